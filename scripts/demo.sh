#!/usr/bin/env bash
# npm run demo: builds if needed, then runs examples/demo on real dma-bufs (here if this host has udmabuf and
# vgem, otherwise in the test VM).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/examples/demo.js ] && [ -f build/Release/dmabuf_sync.node ] || { bash scripts/fetch-kernel.sh >/dev/null; npm run --silent build; }
if sh scripts/has-devices.sh; then
  exec node dist/examples/demo.js
fi
echo "demo: this host lacks udmabuf/vgem; running in the test VM" >&2
exec bash scripts/vm.sh node dist/examples/demo.js
