# Sourced by scripts/vm.sh: an optional emulated display for the test VM, chosen by DMABUF_VM_DISPLAY.
#
#   DMABUF_VM_DISPLAY=virtio   -device virtio-gpu-pci,xres=640,yres=480   (scans out its own buffers only)
#   DMABUF_VM_DISPLAY=bochs    -device bochs-display,xres=640,yres=480    (scans out its own buffers only)
#   DMABUF_VM_DISPLAY=cirrus   -device cirrus-vga                         (also imports foreign dma-bufs)
#
# With a display the VM also gets a QMP socket and a "snap" virtio-serial port: the guest writes
# "SNAP <name>\n" there and the host helper (scripts/vm-display-host.js) answers "ok\n" once QMP screendump
# has written <name>.ppm (P6, the exact pixels on the emulated screen) into DMABUF_VM_SNAPDIR. That directory
# is shared read-write with the guest (9p tag "snaps", mounted by vm-init.sh at the same path), so the guest
# reads the dump and may leave files there (the demo's PNG). DMABUF_VM_SNAPDIR defaults to a directory of
# the run, removed after it.
#
# Adds the display's DRM modules to VM_MODULES; defines DISPLAY_MODULES, display_prepare <run dir> (adds the
# devices and sockets to QEMU_EXTRA), display_start and display_stop (the host helper, around each boot).
DISPLAY_MODULES=""
DISPLAY_DEVICE=()
DISPLAY_HELPER_PID=""
case "${DMABUF_VM_DISPLAY:-}" in
  "") ;;
  virtio) DISPLAY_MODULES="virtio-gpu"; DISPLAY_DEVICE=(-device virtio-gpu-pci,xres=640,yres=480) ;;
  bochs) DISPLAY_MODULES="bochs"; DISPLAY_DEVICE=(-device bochs-display,xres=640,yres=480) ;;
  cirrus) DISPLAY_MODULES="cirrus"; DISPLAY_DEVICE=(-device cirrus-vga) ;;
  *) echo "vm: DMABUF_VM_DISPLAY must be virtio, bochs or cirrus (got '$DMABUF_VM_DISPLAY')" >&2; exit 2 ;;
esac
[ -z "$DISPLAY_MODULES" ] || VM_MODULES+=("$DISPLAY_MODULES")

# Creates the snapshot directory, names it in <run>/snapdir for vm-init.sh, adds the device, the QMP socket,
# the snap port and the share to QEMU_EXTRA. Before the command script is written (it exports the dir).
display_prepare() {
  [ -n "$DISPLAY_MODULES" ] || return 0
  local run="$1"
  export DMABUF_VM_SNAPDIR="${DMABUF_VM_SNAPDIR:-$run/snaps}"
  mkdir -p "$DMABUF_VM_SNAPDIR"
  DMABUF_VM_SNAPDIR="$(cd "$DMABUF_VM_SNAPDIR" && pwd)"
  echo "$DMABUF_VM_SNAPDIR" > "$run/snapdir"
  DISPLAY_QMP="$run/qmp.sock"
  DISPLAY_SNAP="$run/snap.sock"
  QEMU_EXTRA+=("${DISPLAY_DEVICE[@]}" -qmp "unix:$DISPLAY_QMP,server=on,wait=off"
    -chardev "socket,id=snap,path=$DISPLAY_SNAP,server=on,wait=off" -device virtserialport,chardev=snap,name=snap
    -virtfs "local,path=$DMABUF_VM_SNAPDIR,mount_tag=snaps,security_model=none")
}

# Starts the host helper; it connects once qemu has created the sockets and ends when qemu closes them.
display_start() {
  [ -n "$DISPLAY_MODULES" ] || return 0
  rm -f "$DISPLAY_QMP" "$DISPLAY_SNAP"
  node "$HERE/vm-display-host.js" "$DISPLAY_QMP" "$DISPLAY_SNAP" "$DMABUF_VM_SNAPDIR" &
  DISPLAY_HELPER_PID=$!
}

display_stop() {
  [ -n "$DISPLAY_HELPER_PID" ] || return 0
  kill "$DISPLAY_HELPER_PID" 2>/dev/null || true
  wait "$DISPLAY_HELPER_PID" 2>/dev/null || true
  DISPLAY_HELPER_PID=""
}
