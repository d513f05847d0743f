#!/usr/bin/env bash
# npm run demo: builds if needed, then runs examples/demo on real dma-bufs (here if this host has udmabuf and
# vgem, otherwise in the test VM, with an emulated display; the screens are saved in demo-output/:
# demo-screen.png after the swap chain's last frame (step 4, bochs by default) and demo-camera.png after the
# camera → display step (step 5, on cirrus: of the VM's displays only cirrus scans out a camera's dma-bufs).
# DMABUF_VM_DISPLAY=<virtio|bochs|cirrus> runs every step once on that display.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/examples/demo.js ] && [ -f build/Release/dmabuf_sync.node ] || { bash scripts/fetch-kernel.sh >/dev/null; npm run --silent build; }
if sh scripts/has-devices.sh; then
  exec node dist/examples/demo.js
fi
echo "demo: this host lacks udmabuf/vgem; running in the test VM" >&2
mkdir -p demo-output
if [ -n "${DMABUF_VM_DISPLAY:-}" ]; then
  DMABUF_VM_SNAPDIR="$PWD/demo-output" exec bash scripts/vm.sh node dist/examples/demo.js
fi
DEMO_STEPS=1,2,3,4 DMABUF_VM_DISPLAY=bochs DMABUF_VM_SNAPDIR="$PWD/demo-output" bash scripts/vm.sh node dist/examples/demo.js
DEMO_STEPS=5 DMABUF_VM_DISPLAY=cirrus DMABUF_VM_SNAPDIR="$PWD/demo-output" exec bash scripts/vm.sh node dist/examples/demo.js
