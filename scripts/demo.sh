#!/usr/bin/env bash
# npm run demo: builds if needed, then runs examples/demo on real dma-bufs (here if this host has udmabuf and
# vgem, otherwise in the test VM, with an emulated display: DMABUF_VM_DISPLAY, default bochs; the screen
# after the demo's last frame is saved as demo-output/demo-screen.png).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/examples/demo.js ] && [ -f build/Release/dmabuf_sync.node ] || { bash scripts/fetch-kernel.sh >/dev/null; npm run --silent build; }
if sh scripts/has-devices.sh; then
  exec node dist/examples/demo.js
fi
echo "demo: this host lacks udmabuf/vgem; running in the test VM" >&2
mkdir -p demo-output
DMABUF_VM_DISPLAY="${DMABUF_VM_DISPLAY:-bochs}" DMABUF_VM_SNAPDIR="$PWD/demo-output" exec bash scripts/vm.sh node dist/examples/demo.js
