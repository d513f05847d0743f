#!/usr/bin/env bash
# Runs the display tests (jest project "display") in the test VM, once per emulated display device:
# test/display/own (buffers of the display's own memory) on virtio-gpu and on bochs, test/display/import
# (foreign dma-bufs scanned out) on cirrus. The runs are serial: the first opener of a card is DRM master,
# so display tests never run in parallel. Extra args go to jest. Exits non-zero if any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
for run in ${DMABUF_TEST_DISPLAYS:-virtio:own bochs:own cirrus:import}; do
  device=${run%%:*} dir=${run#*:}
  echo "display tests: $dir on $device" >&2
  DMABUF_VM_DISPLAY=$device bash scripts/vm.sh node_modules/.bin/jest --selectProjects display --runInBand \
    --testTimeout=120000 "dist/test/display/$dir/" "$@" || rc=1
done
exit $rc
