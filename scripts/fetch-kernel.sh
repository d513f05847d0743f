#!/usr/bin/env bash
# Fetches the test VM's Debian kernel package into the cache and unpacks vmlinuz plus its modules; prints the
# kernel version. Which kernel: DMABUF_VM_ARCH (x64 | arm64 | arm: the arm64 kernel) and DMABUF_VM_KERNEL
# (6.12 trixie, the default | 6.1 bookworm | 5.10 bullseye); see scripts/vm-config.sh for the cache layout.
# The x64 6.12 fetch also keeps the kernel's DRM UAPI headers (drm.h, vgem_drm.h) in <cache>/uapi/drm for
# the C baseline of scripts/bench.sh on hosts without drm/ headers (the addon declares its own: drm_uapi.h). The mirror is the one this machine's apt already uses: we read its URI
# from /etc/apt and never name a host ourselves.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/vm-config.sh"
mkdir -p "$KDIR"
if [ -s "$KDIR/ready" ]; then cat "$KDIR/ready"; exit 0; fi

private_apt "$SUITE" "$KARCH"
# linux-image-<arch> is a metapackage: its dependency names the real, versioned image package.
PKG=$(apt-cache "${APTOPTS[@]}" depends "linux-image-$KARCH" | awk -v s="$VM_KERNEL" \
  '$1 ~ /Depends:/ && index($2, "linux-image-" s ".") == 1 { print $2; exit }')
[ -n "$PKG" ] || { echo "fetch-kernel: no linux-image-$VM_KERNEL package for $KARCH found in $SUITE" >&2; exit 1; }
PKGS=("$PKG")
# The matching -common headers package carries the DRM UAPI headers that the addon's vgem shim compiles
# against (the dma-buf core needs only linux-libc-dev). Taken with the default kernel only.
HDR=""
if [ "$KDIR" = "$CACHE/kernel" ]; then HDR="linux-headers-${PKG#linux-image-}"; HDR="${HDR%-amd64}-common"; PKGS+=("$HDR"); fi
(cd "$KDIR" && quiet apt-get "${APTOPTS[@]}" download "${PKGS[@]}")
DEB=$(ls "$KDIR"/"$PKG"_*.deb | head -1)
rm -rf "$KDIR/root" && mkdir -p "$KDIR/root"
dpkg-deb -x "$DEB" "$KDIR/root"
MODROOT="$KDIR/root/usr/lib/modules"; [ -d "$MODROOT" ] || MODROOT="$KDIR/root/lib/modules"
KVER=$(ls "$MODROOT" | head -1)
cp "$KDIR/root/boot/vmlinuz-$KVER" "$KDIR/vmlinuz"
ln -sfn "$MODROOT/$KVER" "$KDIR/modules"
cp "$KDIR/root/boot/config-$KVER" "$KDIR/config" 2>/dev/null || true
if [ -n "$HDR" ]; then
  rm -rf "$KDIR/hdr" "$CACHE/uapi" && mkdir -p "$KDIR/hdr" "$CACHE/uapi"
  dpkg-deb -x "$(ls "$KDIR"/"$HDR"_*.deb | head -1)" "$KDIR/hdr"
  cp -r "$(find "$KDIR/hdr" -path '*/include/uapi/drm' -type d | head -1)" "$CACHE/uapi/drm"
  rm -rf "$KDIR/hdr"
fi
rm -f "$KDIR"/*.deb
echo "$KVER" > "$KDIR/ready"
cat "$KDIR/ready"
