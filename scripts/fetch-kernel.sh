#!/usr/bin/env bash
# Fetches Debian trixie's 6.12 kernel package into the cache (~/.cache/dmabuf-sync/kernel) and unpacks
# vmlinuz plus the modules the test VM needs. The mirror is the one this machine's apt already uses:
# we read its URI from /etc/apt and never name a host ourselves.
set -euo pipefail
CACHE="${DMABUF_SYNC_CACHE:-$HOME/.cache/dmabuf-sync}"
KDIR="$CACHE/kernel"
mkdir -p "$KDIR"
if [ -s "$KDIR/ready" ]; then cat "$KDIR/ready"; exit 0; fi

# The first Debian archive URI (not -security) configured in apt, deb822 or one-line style.
mirror_uri() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } break } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  return 1
}
URI=$(mirror_uri) || { echo "fetch-kernel: no Debian mirror URI found in /etc/apt" >&2; exit 1; }

APT="$CACHE/apt"
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/etc/preferences.d"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $URI trixie main" > "$APT/etc/sources.list"
APTOPTS=(-o Dir::Etc::SourceList="$APT/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o Dir::Etc::Preferences="$APT/etc/preferences" -o Dir::Etc::PreferencesParts="$APT/etc/preferences.d"
  -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache" -o Dir::State::Status=/dev/null
  -o APT::Architecture=amd64 -o Debug::NoLocking=1 -o APT::Sandbox::User=root -q)
mkdir -p "$APT/cache"
# apt's output names the mirror: keep it in a log, show it masked only on failure.
LOG="$APT/log"
quiet() { "$@" >>"$LOG" 2>&1 || { sed -E 's#://[^/ ]+#://<mirror>#g' "$LOG" >&2; return 1; }; }
: > "$LOG"
quiet apt-get "${APTOPTS[@]}" update
# linux-image-amd64 is a metapackage: its dependency names the real, versioned image package.
PKG=$(apt-cache "${APTOPTS[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-6\.12/ { print $2; exit }')
[ -n "$PKG" ] || { echo "fetch-kernel: no linux-image-6.12 package found in trixie" >&2; exit 1; }
# The matching -common headers package carries the DRM UAPI headers (drm.h, vgem_drm.h) that the addon's
# test-only vgem shim compiles against; the dma-buf core needs only linux-libc-dev.
HDR="linux-headers-${PKG#linux-image-}"; HDR="${HDR%-amd64}-common"
(cd "$KDIR" && quiet apt-get "${APTOPTS[@]}" download "$PKG" "$HDR")
DEB=$(ls "$KDIR"/"$PKG"_*.deb | head -1)
rm -rf "$KDIR/root" && mkdir -p "$KDIR/root"
dpkg-deb -x "$DEB" "$KDIR/root"
MODROOT="$KDIR/root/usr/lib/modules"; [ -d "$MODROOT" ] || MODROOT="$KDIR/root/lib/modules"
KVER=$(ls "$MODROOT" | head -1)
cp "$KDIR/root/boot/vmlinuz-$KVER" "$KDIR/vmlinuz"
ln -sfn "$MODROOT/$KVER" "$KDIR/modules"
rm -rf "$KDIR/hdr" "$CACHE/uapi" && mkdir -p "$KDIR/hdr" "$CACHE/uapi"
dpkg-deb -x "$(ls "$KDIR"/"$HDR"_*.deb | head -1)" "$KDIR/hdr"
cp -r "$(find "$KDIR/hdr" -path '*/include/uapi/drm' -type d | head -1)" "$CACHE/uapi/drm"
rm -rf "$KDIR/hdr"
echo "$KVER" > "$KDIR/ready"
cat "$KDIR/ready"
