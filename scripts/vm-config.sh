# Sourced by the test VM's scripts (vm.sh, fetch-kernel.sh, fetch-userland.sh): which machine to emulate
# and where its pieces are cached. Not run on its own.
#   DMABUF_VM_ARCH   x64 (default) | arm64 | arm (32-bit armhf user space on the arm64 kernel, through COMPAT)
#   DMABUF_VM_KERNEL 6.12 (default, Debian trixie) | 6.1 (bookworm) | 5.10 (bullseye)
# Cache (DMABUF_SYNC_CACHE, default ~/.cache/dmabuf-sync): the x64 6.12 kernel stays in kernel/ with its apt
# state in apt/ (the layout older checkouts use); every other kernel in kernel-<debian arch>-<series>/ and
# apt-<suite>-<debian arch>/; an arm user space in userland-<arch>/.
CACHE="${DMABUF_SYNC_CACHE:-$HOME/.cache/dmabuf-sync}"
VM_ARCH="${DMABUF_VM_ARCH:-x64}"
VM_KERNEL="${DMABUF_VM_KERNEL:-6.12}"
case "$VM_ARCH" in
  x64) KARCH=amd64; UARCH=amd64; QEMU=qemu-system-x86_64 ;;
  arm64) KARCH=arm64; UARCH=arm64; QEMU=qemu-system-aarch64 ;;
  arm) KARCH=arm64; UARCH=armhf; QEMU=qemu-system-aarch64 ;;
  *) echo "DMABUF_VM_ARCH must be x64, arm64 or arm (got '$VM_ARCH')" >&2; exit 2 ;;
esac
case "$VM_KERNEL" in
  6.12) SUITE=trixie ;;
  6.1) SUITE=bookworm ;;
  5.10) SUITE=bullseye ;;
  *) echo "DMABUF_VM_KERNEL must be 6.12, 6.1 or 5.10 (got '$VM_KERNEL')" >&2; exit 2 ;;
esac
if [ "$KARCH" = amd64 ] && [ "$VM_KERNEL" = 6.12 ]; then
  KDIR="$CACHE/kernel"
else
  KDIR="$CACHE/kernel-$KARCH-$VM_KERNEL"
fi

# The first Debian archive URI (not -security) configured in this machine's apt, deb822 or one-line style.
# We never name a host ourselves.
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

# private_apt SUITE DEBARCH: sets APT (its state dir) and APTOPTS (apt-get/apt-cache options) for a private
# package list of that suite and architecture, leaving the machine's own apt state alone, and updates it.
private_apt() {
  local suite=$1 arch=$2 uri
  if [ "$suite" = trixie ] && [ "$arch" = amd64 ]; then APT="$CACHE/apt"; else APT="$CACHE/apt-$suite-$arch"; fi
  uri=$(mirror_uri) || { echo "vm: no Debian mirror URI found in /etc/apt" >&2; return 1; }
  mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/etc/preferences.d" "$APT/cache"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" > "$APT/etc/sources.list"
  APTOPTS=(-o Dir::Etc::SourceList="$APT/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::Etc::Preferences="$APT/etc/preferences" -o Dir::Etc::PreferencesParts="$APT/etc/preferences.d"
    -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache" -o Dir::State::Status=/dev/null
    -o APT::Architecture="$arch" -o APT::Architectures="$arch" -o Debug::NoLocking=1 -o APT::Sandbox::User=root -q)
  LOG="$APT/log"
  : > "$LOG"
  quiet apt-get "${APTOPTS[@]}" update
}

# apt's output names the mirror: keep it in $LOG, show it masked only on failure.
quiet() { "$@" >>"$LOG" 2>&1 || { sed -E 's#://[^/ ]+#://<mirror>#g' "$LOG" >&2; return 1; }; }
