#!/usr/bin/env bash
# Runs the integration tests (jest project "vm", compiled JS) where real devices are: on this host if it has
# /dev/udmabuf, /dev/dma_heap/system and a vgem card, otherwise inside the test VM. Extra args go to jest.
set -euo pipefail
cd "$(dirname "$0")/.."
has_vgem() { for d in /sys/class/drm/card*/device/driver; do [ "$(basename "$(readlink -f "$d")" 2>/dev/null)" = vgem ] && return 0; done; return 1; }
if [ -e /dev/udmabuf ] && [ -e /dev/dma_heap/system ] && has_vgem; then
  exec node_modules/.bin/jest --selectProjects vm --runInBand --testTimeout=120000 "$@"
fi
echo "integration tests: this host lacks udmabuf/dma_heap/vgem; running them in the test VM" >&2
exec bash scripts/vm.sh node_modules/.bin/jest --selectProjects vm --runInBand --testTimeout=120000 "$@"
