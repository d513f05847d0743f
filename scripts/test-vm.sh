#!/usr/bin/env bash
# Runs the integration tests (jest project "vm", compiled JS) where real devices are: on this host if it has
# /dev/udmabuf, /dev/dma_heap/system and a vgem card (and no other machine was asked for), otherwise inside
# the test VM (scripts/vm.sh) on the machine DMABUF_VM_ARCH / DMABUF_VM_KERNEL name. Extra args go to jest.
# DMABUF_TEST_RESULTS=<file>: where jest's JSON results go (the VM cannot write the host: they come back on
# its output between markers, which this script takes out of what it shows).
# Ends with the run's count line (scripts/test-summary.js).
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${DMABUF_TEST_RESULTS:-}
own=""
if [ -z "$RESULTS" ]; then RESULTS=$(mktemp "${TMPDIR:-/tmp}/dmabuf-jest.XXXXXX"); own=$RESULTS; fi
trap '[ -z "$own" ] || rm -f "$own"' EXIT
rm -f "$RESULTS"
# Emulated arm runs several times slower than emulated x64: a longer per-test timeout there.
timeout_ms=120000
case "${DMABUF_VM_ARCH:-x64}" in arm64 | arm) timeout_ms=600000; export DMABUF_VM_TIMEOUT="${DMABUF_VM_TIMEOUT:-3600}" ;; esac
# --logHeapUsage: each file prints the heap it left, so a run the VM kernel kills for memory shows its growth.
jest=(node_modules/.bin/jest --selectProjects vm --runInBand --logHeapUsage --testTimeout=$timeout_ms --json)
label="${DMABUF_VM_ARCH:-x64}/${DMABUF_VM_KERNEL:-6.12}"

if [ -z "${DMABUF_VM_ARCH:-}${DMABUF_VM_KERNEL:-}" ] && sh scripts/has-devices.sh --heap; then
  set +e
  "${jest[@]}" --outputFile="$RESULTS" "$@"
  rc=$?
  set -e
  node scripts/test-summary.js "host=$RESULTS" | head -n -1 || true
  exit "$rc"
fi

arch=${DMABUF_VM_ARCH:-x64}
if [ "$arch" = x64 ] && [ "${DMABUF_VM_PREBUILD:-}" != 1 ]; then
  # The x64 VM runs this host's build/Release: rebuilt when missing or older than the native sources.
  if [ ! -f build/Release/dmabuf_sync.node ] || [ -n "$(find native binding.gyp -newer build/Release/dmabuf_sync.node 2>/dev/null | head -1)" ]; then
    echo "integration tests: building the addon" >&2
    log=$(mktemp)
    npm run --silent build:native >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; exit 1; }
    rm -f "$log"
  fi
else
  # The arm VMs (and x64 with DMABUF_VM_PREBUILD=1) run the prebuild: rebuilt when missing or older than the
  # native sources.
  pre=$(ls prebuilds/linux-"$arch"/*.node 2>/dev/null | head -1 || true)
  if [ -z "$pre" ] || [ -n "$(find native binding.gyp -newer "$pre" 2>/dev/null | head -1)" ]; then
    echo "integration tests: cross-building prebuilds/linux-$arch" >&2
    log=$(mktemp)
    DMABUF_PREBUILD_ARCHS="$arch" bash scripts/prebuild.sh >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; exit 1; }
    rm -f "$log"
  fi
fi

echo "integration tests: in the test VM ($label)" >&2
# The VM's /tmp is its own: jest writes the JSON there and prints it between markers at the end.
inner='f=/tmp/.dmabuf-jest.json; "$@" --outputFile="$f"; rc=$?; echo "--- jest.json ---"; cat "$f"; echo; echo "--- end jest.json ---"; exit $rc'
set +e
bash scripts/vm.sh sh -c "$inner" sh "${jest[@]}" "$@" | awk -v out="$RESULTS" '
  $0 == "--- jest.json ---" { j = 1; next }
  $0 == "--- end jest.json ---" { j = 0; next }
  j { print > out; next }
  { print; fflush() }'
rc=${PIPESTATUS[0]}
set -e
node scripts/test-summary.js "$label=$RESULTS" | head -n -1 || true
exit "$rc"
