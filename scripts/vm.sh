#!/usr/bin/env bash
# Runs a command inside a QEMU (TCG) VM booted with a Debian kernel: real udmabuf, dma_heap/system and vgem,
# which this host kernel lacks. The host root is mounted read-only over 9p and the command runs in a chroot
# (of the host root on x64; of an arm user space with the project visible on arm), in the current directory,
# with a private tmpfs /tmp. Output streams back live; the exit status of the command is this script's.
#
#   scripts/vm.sh node -e "..."          (or: npm run vm -- node -e "...")
#   DMABUF_VM_ARCH=arm64 DMABUF_VM_KERNEL=6.12 scripts/vm.sh node -p process.arch
#
# Environment: DMABUF_VM_ARCH (x64 | arm64 | arm, default x64), DMABUF_VM_KERNEL (6.12 | 6.1 | 5.10, default
# 6.12), DMABUF_VM_TIMEOUT (seconds, default 1800), DMABUF_VM_MEM (default 4G), DMABUF_VM_SMP (default 2),
# DMABUF_SYNC_CACHE (default ~/.cache/dmabuf-sync), DMABUF_VM_PREBUILD=1 (x64: load prebuilds/linux-x64, the
# addon the package ships, instead of build/Release; the arm VMs always do), DMABUF_VM_DISPLAY (virtio |
# bochs | cirrus: an emulated display, see scripts/vm-display.sh). The kernel console goes to $DMABUF_SYNC_CACHE/console.log
# (console-<arch>-<kernel>.log for the other machines). On arm the command runs against the cross-built
# prebuild (prebuilds/linux-<arch>, from npm run prebuild), never build/Release. See docs/testing.md.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: scripts/vm.sh <command> [args...]" >&2; exit 2; }
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/vm-config.sh"
export DMABUF_SYNC_CACHE="$CACHE"
mkdir -p "$CACHE"

# Modules the initramfs loads, with their dependencies, in this order (built-in ones are skipped):
# 9p for the host root, virtio_pci/virtio_console for the 9p and result ports (modules on 6.1 and 5.10), vgem,
# vivid (the virtual V4L2 camera and output of the V4L2 tests; no options: video0..3, cheap to load).
VM_MODULES=(virtio_pci virtio_console 9p 9pnet_virtio vgem vivid)
# Extra QEMU arguments (devices) for every run.
QEMU_EXTRA=()
# DMABUF_VM_DISPLAY: an emulated display (its DRM modules, device, QMP socket and screendump port).
. "$HERE/vm-display.sh"

# POSIX single quotes: the VM's /bin/sh (dash on the host root, busybox ash on arm) reads the script, and
# bash's printf %q may produce $'...' quoting that dash does not understand (e.g. for newlines).
q() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
# The script the VM's /bin/sh runs: environment, cd, exec of the command. On stdout.
command_script() {
  if [ -z "$USERLAND" ]; then
    echo "export PATH=$(q "$PATH") HOME=/tmp TMPDIR=/tmp LANG=$(q "${LANG:-C.UTF-8}")"
    # DMABUF_VM_PREBUILD=1: the x64 addon from prebuilds/linux-x64 (what the package ships), not build/Release.
    if [ -n "${PREBUILDS:-}" ]; then
      echo "mkdir -p /tmp/.dmabuf-prebuild && ln -s $(q "$PREBUILDS") /tmp/.dmabuf-prebuild/prebuilds"
      echo "export DMABUF_SYNC_PREBUILD=/tmp/.dmabuf-prebuild"
    fi
  else
    # The arm user space: its node and busybox; jest's per-platform resolver binding on NODE_PATH; the
    # addon from the cross-built prebuild (node-gyp-build's <NAME>_PREBUILD names a package dir whose
    # prebuilds/ it searches, skipping the project's build/Release, which is this host's x64 build).
    echo "export PATH=/usr/local/bin:/usr/bin:/usr/sbin HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 NODE_PATH=/usr/lib/node_modules"
    echo "mkdir -p /tmp/.dmabuf-prebuild && ln -s $(q "$PREBUILDS") /tmp/.dmabuf-prebuild/prebuilds"
    echo "export DMABUF_SYNC_PREBUILD=/tmp/.dmabuf-prebuild"
  fi
  for v in CI NODE_OPTIONS FORCE_COLOR NO_COLOR TERM NODE_DEBUG $(compgen -e | grep -E '^(DMABUF_|JEST_|DEMO_)' || true); do
    [ -n "${!v+x}" ] && echo "export $v=$(q "${!v}")"
  done
  echo "cd $(q "$PWD") || exit 125"
  printf 'exec'; for a in "$@"; do printf ' %s' "$(q "$a")"; done; printf '\n'
}
# scripts/vm.sh --print-command <command …>: print that script for the x64 VM and exit (a unit test runs it
# with dash and busybox sh to check that every argument arrives intact).
if [ "$1" = --print-command ]; then shift; USERLAND=""; command_script "$@"; exit 0; fi

# --- host tools -------------------------------------------------------------------------------------
need=()
case "$QEMU" in
  qemu-system-x86_64) command -v "$QEMU" >/dev/null || need+=(qemu-system-x86) ;;
  qemu-system-aarch64) command -v "$QEMU" >/dev/null || need+=(qemu-system-arm) ;;
esac
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx insmod && ! ldd /bin/busybox >/dev/null 2>&1 \
  || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v depmod >/dev/null || command -v /usr/sbin/depmod >/dev/null || need+=(kmod)
command -v xz >/dev/null || need+=(xz-utils)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "vm: installing ${need[*]}" >&2
    (apt-get install -y -q "${need[@]}" >/dev/null 2>&1) || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${need[@]}" >/dev/null)
  else
    echo "vm: missing host packages; run: sudo apt-get install ${need[*]}" >&2
    exit 2
  fi
fi
PATH="$PATH:/usr/sbin:/sbin"

# --- kernel and initramfs (cached) ------------------------------------------------------------------
KVER=$("$HERE/fetch-kernel.sh")
USERLAND=""  # empty: the command runs in the host root (x64); otherwise the arm user space's directory
BUSYBOX=/bin/busybox
CONSOLE_LOG="$CACHE/console.log"
if [ "$KDIR" != "$CACHE/kernel" ]; then CONSOLE_LOG="$CACHE/console-$VM_ARCH-$VM_KERNEL.log"; fi
PREBUILDS=""
if [ "$VM_ARCH" != x64 ] || [ "${DMABUF_VM_PREBUILD:-}" = 1 ]; then
  PREBUILDS="$(cd "$HERE/.." && pwd)/prebuilds"
  if ! ls "$PREBUILDS/linux-$VM_ARCH"/*.node >/dev/null 2>&1; then
    echo "vm: no prebuilds/linux-$VM_ARCH addon to run on $VM_ARCH: run 'DMABUF_PREBUILD_ARCHS=$VM_ARCH npm run prebuild'" >&2
    exit 2
  fi
fi
if [ "$VM_ARCH" != x64 ]; then
  USERLAND=$("$HERE/fetch-userland.sh")
  BUSYBOX="$USERLAND/busybox"
  QEMU_EXTRA+=(-virtfs "local,path=$USERLAND,mount_tag=userland,security_model=none,readonly=on,multidevs=remap")
fi
# DMABUF_VM_NODE (a Node line, e.g. 24): the arm user space brings that line's node (fetch-userland.sh); on
# x64 the command finds it first on PATH: this host's node if it is that line, else the official binary.
if [ "$VM_ARCH" = x64 ] && [ -n "${DMABUF_VM_NODE:-}" ]; then
  PATH="$(bash "$HERE/node-bin.sh" x64 "$DMABUF_VM_NODE"):$PATH"
fi
INITRD="$CACHE/initrd-$KVER-$( (cat "$0" "$HERE/vm-init.sh"; [ "$VM_ARCH" = x64 ] || echo "$VM_ARCH ${VM_MODULES[*]} $(sha256sum < "$BUSYBOX")"; [ -z "$DISPLAY_MODULES" ] || echo "display $DISPLAY_MODULES") | sha256sum | cut -c1-12).cpio"
if [ ! -s "$INITRD" ]; then
  STAGE=$(mktemp -d)
  trap 'rm -rf "$STAGE"' EXIT
  # depmod wants <root>/lib/modules/<ver>; resolve load order for what we need, decompress each module.
  MODROOT="$KDIR/modroot"; mkdir -p "$MODROOT/lib/modules"
  ln -sfn "$(readlink -f "$KDIR/modules")" "$MODROOT/lib/modules/$KVER"
  depmod -b "$MODROOT" "$KVER"
  mkdir -p "$STAGE/bin" "$STAGE/mod" "$STAGE/proc" "$STAGE/sys" "$STAGE/dev" "$STAGE/host" "$STAGE/tmp"
  cp "$BUSYBOX" "$STAGE/bin/busybox"
  : > "$STAGE/modules.order"
  n=0
  for m in "${VM_MODULES[@]}"; do
    modprobe -d "$MODROOT" -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
  done | awk '!seen[$0]++' | while read -r ko; do
    n=$((n + 1)); out="$(printf '%02d' "$n")-$(basename "$ko" | sed 's/\.xz$//; s/\.zst$//')"
    case "$ko" in
      *.xz) xz -dc "$ko" > "$STAGE/mod/$out" ;;
      *.zst) zstd -qdc "$ko" > "$STAGE/mod/$out" ;;
      *) cp "$ko" "$STAGE/mod/$out" ;;
    esac
    echo "/mod/$out" >> "$STAGE/modules.order"
  done
  cp "$HERE/vm-init.sh" "$STAGE/init"; chmod +x "$STAGE/init"
  (cd "$STAGE" && find . | cpio -o -H newc --quiet) > "$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"
  rm -rf "$STAGE"; trap - EXIT
fi

# --- the run --------------------------------------------------------------------------------------------
RUN=$(mktemp -d "${TMPDIR:-/tmp}/dmabuf-vm.XXXXXX")
trap 'display_stop; rm -rf "$RUN"' EXIT
display_prepare "$RUN"
command_script "$@" > "$RUN/cmd.sh"
echo "$PWD" > "$RUN/cwd"
echo "$USERLAND" > "$RUN/userland"
# What of the host an arm user space sees at the same path: /work and the top directory of the current one
# (a project under /tmp is bound by vm-init.sh itself).
top="/$(echo "${PWD#/}" | cut -d/ -f1)"
{ [ -d /work ] && echo /work; [ "$top" != /tmp ] && [ "$top" != /work ] && [ "$top" != / ] && echo "$top"; } > "$RUN/binds" || true
: > "$RUN/status"

# Under multi-threaded TCG the guest kernel now and then dies while booting (an int3 left by its own code
# patching, before our init runs). Such a boot is retried; a command that crashed the kernel is not.
boot() {
  : > "$RUN/status"
  local machine console
  case "$VM_ARCH" in
    x64) machine=(-machine q35 -cpu max); console=ttyS0; [ "$VM_KERNEL" = 6.12 ] || console+=" dmabufvm.cache=loose" ;;
    # -cpu max crashes V8 under this TCG; a real core model does not.
    *) machine=(-machine virt -cpu cortex-a76); console="ttyAMA0 dmabufvm.cache=loose" ;;
  esac
  display_start
  timeout --foreground -k 10 "${DMABUF_VM_TIMEOUT:-1800}" "$QEMU" \
    -nodefaults -no-user-config -display none -monitor none -no-reboot \
    "${machine[@]}" -accel tcg,thread=multi -smp "${DMABUF_VM_SMP:-2}" -m "${DMABUF_VM_MEM:-4G}" \
    -kernel "$KDIR/vmlinuz" -initrd "$INITRD" \
    -append "console=$console quiet loglevel=3 panic=-1 dmabufvm.run=$RUN" \
    -serial "file:$CONSOLE_LOG" \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    -device virtio-serial-pci \
    -chardev file,id=out,path=/dev/stdout,append=on -device virtserialport,chardev=out,name=out \
    -chardev "file,id=status,path=$RUN/status" -device virtserialport,chardev=status,name=status \
    ${QEMU_EXTRA[@]+"${QEMU_EXTRA[@]}"} \
    < /dev/null | cat
  # qemu reopens /dev/stdout for the output port: through this pipe its writes never race our own.
  qrc=${PIPESTATUS[0]}
  display_stop
}
set +e
for attempt in 1 2 3; do
  boot
  grep -q R "$RUN/status" && break
  echo "vm: the VM did not boot (attempt $attempt, qemu exit $qrc); kernel console: $CONSOLE_LOG" >&2
  tail -n 5 "$CONSOLE_LOG" >&2 || true
done
set -e
status=$(tr -dc '0-9' < "$RUN/status")
if [ -z "$status" ]; then
  echo "vm: the VM ended without a command status (qemu exit $qrc); kernel console: $CONSOLE_LOG" >&2
  tail -n 30 "$CONSOLE_LOG" >&2 || true
  exit 124
fi
exit "$status"
