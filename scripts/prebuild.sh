#!/usr/bin/env bash
# npm run prebuild: the N-API prebuilds the package ships, stripped, in prebuilds/<platform>-<arch>/:
# linux-arm64 and linux-arm (armhf) with Debian's cross compilers, then linux-x64 (built last, so that
# build/Release is this host's addon again afterwards: prebuildify builds in build/).
#   DMABUF_PREBUILD_ARCHS="arm64 arm x64" (default) picks some.
# The addon uses N-API only, so the Node headers of this host (npm_config_nodedir, /usr/include/node) serve
# every target; without them the node-linux-<arch> npm package's include/node is used (scripts/fetch-node.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# npm also runs a script named "prebuild" before every `npm run build` (a pre-hook). The three builds take a
# minute, so as a hook this does nothing: it builds only when `npm run prebuild` itself was asked for.
if [ "${npm_lifecycle_event:-}" = prebuild ]; then
  p=$PPID
  for _ in 1 2 3 4 5 6; do
    [ -r "/proc/$p/cmdline" ] || break
    args=" $(tr '\0' ' ' < "/proc/$p/cmdline")"
    case "$args" in
      *" run build "* | *" run-script build "*) exit 0 ;;
      *" run prebuild "* | *" run-script prebuild "*) break ;;
    esac
    p=$(awk '{ print $4 }' "/proc/$p/stat" 2>/dev/null || echo 1)
    [ "$p" -gt 1 ] || break
  done
fi

ARCHS=${DMABUF_PREBUILD_ARCHS:-arm64 arm x64}
host=$(node -p process.arch)

# Cross compilers (Debian names), installed with apt when missing and we may.
need=()
for arch in $ARCHS; do
  case "$arch" in
    arm64) [ "$host" = arm64 ] || command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu) ;;
    arm) [ "$host" = arm ] || command -v arm-linux-gnueabihf-g++ >/dev/null || need+=(g++-arm-linux-gnueabihf) ;;
  esac
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "prebuild: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
  else
    echo "prebuild: missing cross compilers; run: sudo apt-get install --no-install-recommends ${need[*]}" >&2
    exit 2
  fi
fi

# Node headers: node-gyp cannot download them without internet.
if [ -z "${npm_config_nodedir:-}" ]; then
  if [ -f /usr/include/node/node_api.h ]; then
    export npm_config_nodedir=/usr
  else
    npm_config_nodedir=$(bash scripts/fetch-node.sh "$host" | sed -n 's/^dir=//p'); export npm_config_nodedir
  fi
fi

prebuildify=node_modules/.bin/prebuildify
for arch in $ARCHS; do
  case "$arch" in
    arm64) triple=aarch64-linux-gnu ;;
    arm) triple=arm-linux-gnueabihf ;;
    x64) triple=x86_64-linux-gnu ;;
    *) echo "prebuild: unknown arch $arch (x64, arm64, arm)" >&2; exit 2 ;;
  esac
  echo "prebuild: linux-$arch" >&2
  if [ "$arch" = "$host" ]; then
    (unset CC CXX LINK AR; "$prebuildify" --napi --strip --arch "$arch")
  else
    CC=$triple-gcc CXX=$triple-g++ LINK=$triple-g++ AR=$triple-ar \
      "$prebuildify" --napi --strip --arch "$arch" --strip-bin "$triple-strip"
  fi
done
# A cross build left build/Release for another arch: rebuild this host's addon (tests load build/ first).
case " $ARCHS " in
  *" $host "*) ;;
  *) node_modules/.bin/node-gyp rebuild >/dev/null ;;
esac
file prebuilds/*/*.node
