#!/usr/bin/env bash
# Runs the display tests (jest project "display") in the x64 test VM with an emulated display, once per
# device: test/display/own (buffers of the display's own memory) on virtio-gpu and on bochs,
# test/display/import (foreign dma-bufs scanned out) on cirrus. The runs are serial: the first opener of a
# card is DRM master, so display tests never run in parallel. DMABUF_TEST_DISPLAYS picks runs
# ("virtio:own bochs:own cirrus:import" by default); with DMABUF_TEST_RESULTS=<file> (one run only) jest's
# JSON results go there. Extra args go to jest. Exits non-zero if any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
for run in ${DMABUF_TEST_DISPLAYS:-virtio:own bochs:own cirrus:import}; do
  device=${run%%:*} dir=${run#*:}
  echo "display tests: $dir on $device" >&2
  results=${DMABUF_TEST_RESULTS:-$(mktemp "${TMPDIR:-/tmp}/dmabuf-jest.XXXXXX")}
  # The VM's /tmp is its own: jest writes the JSON there and prints it between markers at the end.
  inner='f=/tmp/.dmabuf-jest.json; "$@" --outputFile="$f"; rc=$?; echo "--- jest.json ---"; cat "$f"; echo; echo "--- end jest.json ---"; exit $rc'
  DMABUF_VM_DISPLAY=$device bash scripts/vm.sh sh -c "$inner" sh node_modules/.bin/jest --selectProjects display \
    --runInBand --testTimeout=120000 --json "dist/test/display/$dir/" "$@" | awk -v out="$results" '
    $0 == "--- jest.json ---" { j = 1; next }
    $0 == "--- end jest.json ---" { j = 0; next }
    j { print > out; next }
    { print; fflush() }'
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  node scripts/test-summary.js "display $device=$results" | head -n -1 || true
  [ -n "${DMABUF_TEST_RESULTS:-}" ] || rm -f "$results"
done
exit $rc
