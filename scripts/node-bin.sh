#!/usr/bin/env bash
# Prints the directory holding the `node` of a Node line for an architecture: this host's own node when the
# line asked for is this host's (same architecture, version prefix), else the official binary from the npm
# registry, fetched and cached by scripts/fetch-node.sh. Used to run tests on every supported Node line.
#   scripts/node-bin.sh [--reachable] x64|arm64|arm [version]   (version: a major like 24, or a full version)
# --reachable: a directory other uids can reach too (see below).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
reachable=0
if [ "${1:-}" = --reachable ]; then reachable=1; shift; fi
arch=${1:?usage: node-bin.sh x64|arm64|arm [version]}
want=${2:-}
host=$(node -p 'process.versions.node')
if [ "$(node -p 'process.arch')" = "$arch" ]; then
  case "$host" in
    "$want" | "$want".*) echo "$(dirname "$(command -v node)")"; exit 0 ;;
  esac
  [ -n "$want" ] || { echo "$(dirname "$(command -v node)")"; exit 0; }
fi
dir=$(bash "$HERE/fetch-node.sh" "$arch" ${want:+"$want"} | sed -n 's/^dir=//p')
[ -x "$dir/bin/node" ] || { echo "node-bin: no node for $arch $want" >&2; exit 1; }
# The unit tests run children as other uids on process.execPath (the store's EACCES and group-sharing checks);
# a cache under root's home is not theirs to reach, so root gets a world-reachable link under TMPDIR.
if [ "$reachable" = 1 ] && [ "$(id -u)" = 0 ]; then
  pub="${TMPDIR:-/tmp}/dmabuf-sync-node/$(basename "$dir")"
  if [ ! -x "$pub/node" ]; then
    mkdir -p "$pub" && chmod 755 "${TMPDIR:-/tmp}/dmabuf-sync-node" "$pub"
    ln -f "$dir/bin/node" "$pub/node" 2>/dev/null || cp "$dir/bin/node" "$pub/node"
  fi
  echo "$pub"
  exit 0
fi
echo "$dir/bin"
