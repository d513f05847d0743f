#!/usr/bin/env bash
# Runs a command inside a QEMU (TCG) VM booted with Debian's 6.12 kernel: real udmabuf, dma_heap/system and
# vgem, which this host kernel lacks. The host root is mounted read-only over 9p and the command runs in a
# chroot of it, in the current directory, with a private tmpfs /tmp. Output streams back live; the exit
# status of the command is this script's exit status.
#
#   scripts/vm.sh node -e "..."          (or: npm run vm -- node -e "...")
#
# Environment: DMABUF_VM_TIMEOUT (seconds, default 1800), DMABUF_VM_MEM (default 3G), DMABUF_VM_SMP
# (default 2), DMABUF_SYNC_CACHE (default ~/.cache/dmabuf-sync). The kernel console goes to
# $DMABUF_SYNC_CACHE/console.log.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: scripts/vm.sh <command> [args...]" >&2; exit 2; }
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${DMABUF_SYNC_CACHE:-$HOME/.cache/dmabuf-sync}"
export DMABUF_SYNC_CACHE="$CACHE"
mkdir -p "$CACHE"

# --- host tools -------------------------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
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
KDIR="$CACHE/kernel"
INITRD="$CACHE/initrd-$KVER-$(cat "$0" "$HERE/vm-init.sh" | sha256sum | cut -c1-12).cpio"
if [ ! -s "$INITRD" ]; then
  STAGE=$(mktemp -d)
  trap 'rm -rf "$STAGE"' EXIT
  # depmod wants <root>/lib/modules/<ver>; resolve load order for what we need, decompress each module.
  MODROOT="$KDIR/modroot"; mkdir -p "$MODROOT/lib/modules"
  ln -sfn "$(readlink -f "$KDIR/modules")" "$MODROOT/lib/modules/$KVER"
  depmod -b "$MODROOT" "$KVER"
  mkdir -p "$STAGE/bin" "$STAGE/mod" "$STAGE/proc" "$STAGE/sys" "$STAGE/dev" "$STAGE/host" "$STAGE/tmp"
  cp /bin/busybox "$STAGE/bin/busybox"
  : > "$STAGE/modules.order"
  n=0
  for m in 9p 9pnet_virtio vgem; do
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
trap 'rm -rf "$RUN"' EXIT
{
  echo "export PATH='$PATH' HOME=/tmp TMPDIR=/tmp LANG=${LANG:-C.UTF-8}"
  for v in CI NODE_OPTIONS FORCE_COLOR NO_COLOR TERM NODE_DEBUG $(compgen -e | grep -E '^(DMABUF_|JEST_)' || true); do
    [ -n "${!v+x}" ] && printf 'export %s=%q\n' "$v" "${!v}"
  done
  printf 'cd %q || exit 125\n' "$PWD"
  printf 'exec'; printf ' %q' "$@"; printf '\n'
} > "$RUN/cmd.sh"
echo "$PWD" > "$RUN/cwd"
: > "$RUN/status"

# Under multi-threaded TCG the guest kernel now and then dies while booting (an int3 left by its own code
# patching, before our init runs). Such a boot is retried; a command that crashed the kernel is not.
boot() {
  : > "$RUN/status"
  timeout --foreground -k 10 "${DMABUF_VM_TIMEOUT:-1800}" qemu-system-x86_64 \
    -nodefaults -no-user-config -display none -monitor none -no-reboot \
    -machine q35 -accel tcg,thread=multi -cpu max -smp "${DMABUF_VM_SMP:-2}" -m "${DMABUF_VM_MEM:-3G}" \
    -kernel "$KDIR/vmlinuz" -initrd "$INITRD" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 dmabufvm.run=$RUN" \
    -serial "file:$CACHE/console.log" \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    -device virtio-serial-pci \
    -chardev file,id=out,path=/dev/stdout,append=on -device virtserialport,chardev=out,name=out \
    -chardev "file,id=status,path=$RUN/status" -device virtserialport,chardev=status,name=status \
    < /dev/null | cat
  # qemu reopens /dev/stdout for the output port: through this pipe its writes never race our own.
  qrc=${PIPESTATUS[0]}
}
set +e
for attempt in 1 2 3; do
  boot
  grep -q R "$RUN/status" && break
  echo "vm: the VM did not boot (attempt $attempt, qemu exit $qrc); kernel console: $CACHE/console.log" >&2
  tail -n 5 "$CACHE/console.log" >&2 || true
done
set -e
status=$(tr -dc '0-9' < "$RUN/status")
if [ -z "$status" ]; then
  echo "vm: the VM ended without a command status (qemu exit $qrc); kernel console: $CACHE/console.log" >&2
  tail -n 30 "$CACHE/console.log" >&2 || true
  exit 124
fi
exit "$status"
