#!/usr/bin/env bash
# Proves native/drm_uapi.h (the addon's own declaration of the DRM UAPI) matches the kernel's headers on each
# architecture the prebuilds target: compiles native/drm_uapi_check.cc (static_asserts on sizes, offsets,
# request numbers) for x64 against linux-libc-dev-amd64-cross's headers and for arm64 and arm with the cross
# compilers, whose sysroots carry drm/. A mismatch fails with the struct and field named.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
check() {  # arch compiler include-dir
  local arch=$1 cxx=$2 inc=$3
  command -v "$cxx" >/dev/null || { echo "check-drm-uapi: $cxx not found (needed for $arch)" >&2; fail=1; return; }
  [ -f "$inc/drm/drm_mode.h" ] || { echo "check-drm-uapi: no $inc/drm/drm_mode.h for $arch" >&2; fail=1; return; }
  if "$cxx" -std=c++17 -fsyntax-only -Wall -Werror -idirafter "$inc" -Inative native/drm_uapi_check.cc; then
    echo "check-drm-uapi: $arch: native/drm_uapi.h matches $inc/drm"
  else
    echo "check-drm-uapi: $arch: native/drm_uapi.h differs from $inc/drm" >&2; fail=1
  fi
}
# x64: the host compiler, with the kernel headers of linux-libc-dev-amd64-cross (Debian's amd64 linux-libc-dev
# has no drm/).
check x64 "${CXX_X64:-g++}" /usr/x86_64-linux-gnu/include
check arm64 aarch64-linux-gnu-g++ /usr/aarch64-linux-gnu/include
check arm arm-linux-gnueabihf-g++ /usr/arm-linux-gnueabihf/include
exit $fail
