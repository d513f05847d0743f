#!/usr/bin/env bash
# prepack: the package must carry the three prebuilds (npm run prebuild), each an ELF shared object for its
# architecture that exports nothing but the two N-API entry points (native/exports.map: Node's executable must
# not interpose our symbols), so that boards install without a compiler. With DMABUF_CHECK_NODES="20 22 24"
# (CI), the x64 prebuild is also loaded on each of those Node lines and a read-only view with its write guard
# is exercised there (the arm prebuilds run in the arm64 test VM). Each prebuild must have its DRM part (KMS
# and vgem, native/drm_uapi.h): the names of its KMS/vgem functions and DRM constants are in every one, and
# the loaded x64 one reports them. Fails naming what is missing or wrong.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
for want in "x64 62" "arm64 183" "arm 40"; do
  arch=${want% *}; machine=${want#* }
  f=$(ls prebuilds/linux-"$arch"/*.node 2>/dev/null | head -1 || true)
  if [ -z "$f" ]; then echo "prepack: prebuilds/linux-$arch/*.node is missing" >&2; bad=1; continue; fi
  # ELF e_machine (bytes 18-19, little-endian): 62 x86-64, 183 AArch64, 40 ARM.
  got=$(od -An -tu2 -j18 -N2 "$f" | tr -d ' ')
  if [ "$(head -c4 "$f" | od -An -c | tr -d ' ')" != '177ELF' ] || [ "$got" != "$machine" ]; then
    echo "prepack: $f is not a linux-$arch ELF object (e_machine $got, want $machine)" >&2; bad=1
    continue
  fi
  exported=$(readelf --dyn-syms --wide "$f" | awk '$1 ~ /^[0-9]+:$/ && $7 != "UND" && ($5 == "GLOBAL" || $5 == "WEAK") { sub(/@.*/, "", $8); print $8 }' | sort | tr '\n' ' ')
  if [ "$exported" != "napi_register_module_v1 node_api_module_get_api_version_v1 " ]; then
    echo "prepack: $f exports more than the N-API entry points (native/exports.map not applied): $exported" >&2; bad=1
  fi
  # The DRM part: the property names the addon sets on its exports and constants are strings in .rodata.
  for name in kmsAtomicCommit kmsAddFb2 vgemFenceAttach vgemFenceSignal DRM_CLIENT_CAP_ATOMIC DRM_FORMAT_XRGB8888 \
    DRM_IOCTL_MODE_ATOMIC DRM_IOCTL_VGEM_FENCE_ATTACH; do
    if ! grep -aq "$name" "$f"; then
      echo "prepack: $f has no DRM part ($name missing): it was built from sources without native/drm_uapi.h" >&2; bad=1
      break
    fi
  done
done
for v in ${DMABUF_CHECK_NODES:-}; do
  f=$(ls prebuilds/linux-x64/*.node 2>/dev/null | head -1 || true)
  [ -n "$f" ] || break
  bin=$(bash scripts/node-bin.sh x64 "$v")
  if ! out=$("$bin/node" -e '
    const fs = require("fs"), path = require("path"), os = require("os");
    const addon = require(path.resolve(process.argv[1]));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dmabuf-prebuild-")), fd = fs.openSync(path.join(dir, "b"), "w+");
    fs.writeSync(fd, Buffer.alloc(4096, 7));
    const owner = addon.map(fd, 4096, false), view = addon.lendView(owner, addon.newRevocationToken());
    new Uint8Array(view)[0] = 1;
    const caught = addon.returnView(view) === 2 && addon.unmap(owner) === 2;
    fs.closeSync(fd); fs.rmSync(dir, { recursive: true });
    if (!caught) throw new Error("the write guard did not catch a store");
    const c = addon.constants;
    for (const k of ["DRM_CLIENT_CAP_ATOMIC", "DRM_FORMAT_XRGB8888", "DRM_IOCTL_MODE_ATOMIC", "DRM_IOCTL_VGEM_FENCE_ATTACH"]) {
      if (!(c[k] > 0)) throw new Error(`no DRM part: constants.${k} is ${c[k]}`);
    }
    for (const k of ["kmsAtomicCommit", "kmsAddFb2", "vgemFenceAttach", "drmDriverName"]) {
      if (typeof addon[k] !== "function") throw new Error(`no DRM part: ${k} is not a function`);
    }
    console.log(`Node ${process.versions.node} (N-API ${process.versions.napi})`);' "$f" 2>&1); then
    echo "prepack: $f does not work on Node $v: $out" >&2; bad=1
  else
    echo "prepack: $f loads, guards read-only views and has its DRM part on $out" >&2
  fi
done
if [ "$bad" -ne 0 ]; then echo "prepack: run 'npm run prebuild' first (it builds all three)" >&2; exit 1; fi
echo "prepack: prebuilds for linux-x64, linux-arm64, linux-arm present, each with its DRM part" >&2
