#!/usr/bin/env bash
# Runs the integration tests (jest project "vm", compiled JS) where real devices are: on this host if it has
# /dev/udmabuf, /dev/dma_heap/system and a vgem card, otherwise inside the test VM. Extra args go to jest.
set -euo pipefail
cd "$(dirname "$0")/.."
if sh scripts/has-devices.sh --heap; then
  exec node_modules/.bin/jest --selectProjects vm --runInBand --testTimeout=120000 "$@"
fi
echo "integration tests: this host lacks udmabuf/dma_heap/vgem; running them in the test VM" >&2
exec bash scripts/vm.sh node_modules/.bin/jest --selectProjects vm --runInBand --testTimeout=120000 "$@"
