#!/usr/bin/env bash
# npm run bench: builds what is missing (addon, TypeScript, the C baseline bench/raw-baseline), then runs
# dist/bench/run.js on real dma-bufs: on this host if it has /dev/udmabuf and a vgem card, otherwise inside
# the test VM (scripts/vm.sh). Prints the table; the results JSON goes to bench/results.json (extracted from
# the run's output between the "--- results.json ---" markers, because the VM cannot write the host).
# Environment: DMABUF_BENCH_ONLY=1,3 (figures), DMABUF_BENCH_SCALE=0.2 (shorter loops), DMABUF_VM_TIMEOUT
# (default 900), DMABUF_VM_DISPLAY (the VM's emulated display for figure 8, default bochs). (DMABUF_*
# variables reach the VM.)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f dist/bench/run.js ] || [ ! -f build/Release/dmabuf_sync.node ]; then
  bash scripts/fetch-kernel.sh >/dev/null
  npm run --silent build
fi

# The C baseline: same syscalls as one lock/unlock, plus the vgem fence wake latency when DRM headers exist.
drm=$(sh scripts/find-drm-include.sh || true)
cflags=(-O2 -Wall -pthread)
[ -n "$drm" ] && cflags+=(-DHAVE_VGEM "-I$drm")
if [ ! -x bench/raw-baseline ] || [ bench/raw-baseline.c -nt bench/raw-baseline ]; then
  "${CC:-cc}" "${cflags[@]}" -o bench/raw-baseline bench/raw-baseline.c
fi

out=$(mktemp "${TMPDIR:-/tmp}/dmabuf-bench.XXXXXX")
trap 'rm -f "$out"' EXIT
set +e
if sh scripts/has-devices.sh; then
  node --expose-gc dist/bench/run.js | tee "$out"
else
  echo "bench: this host lacks udmabuf/vgem; running in the test VM (QEMU TCG: compare ratios, not times)" >&2
  DMABUF_VM_DISPLAY="${DMABUF_VM_DISPLAY:-bochs}" DMABUF_VM_TIMEOUT="${DMABUF_VM_TIMEOUT:-900}" bash scripts/vm.sh node --expose-gc dist/bench/run.js | tee "$out"
fi
rc=${PIPESTATUS[0]}
set -e
if grep -q '^--- end results.json ---' "$out"; then
  sed -n '/^--- results.json ---$/,/^--- end results.json ---$/p' "$out" | sed '1d;$d' > bench/results.json
  echo "bench: wrote bench/results.json" >&2
else
  echo "bench: the run printed no results (exit $rc)" >&2
fi
exit "$rc"
