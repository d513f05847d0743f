#!/usr/bin/env bash
# npm run bench: builds what is missing (addon, TypeScript, the C baseline bench/raw-baseline), then runs
# dist/bench/run.js twice:
#  1. the lock-core figures (1c, 2, 3c, 3pc, 9c: pure JS, no dma-buf) natively on this host, printed under
#     their own heading: under QEMU TCG JavaScript costs far more relative to syscalls than on hardware, so this is the
#     truthful view of the library's own overhead. JSON: bench/results-host.json.
#  2. the dma-buf figures on real dma-bufs: on this host if it has /dev/udmabuf and a vgem card, otherwise
#     inside the test VM (scripts/vm.sh). The lock-core figures are excluded there (each figure is measured
#     once, where its numbers mean something). JSON: bench/results.json (extracted from the run's output
#     between the "--- results.json ---" markers, because the VM cannot write the host).
# Environment: DMABUF_BENCH_ONLY=1,3c (figures; a run whose share of the list is empty is skipped),
# DMABUF_BENCH_SCALE=0.2 (shorter loops), DMABUF_VM_TIMEOUT (default 900), DMABUF_VM_DISPLAY (the VM's emulated
# display for figure 8, default bochs). (DMABUF_* variables reach the VM.)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f dist/bench/run.js ] || [ ! -f build/Release/dmabuf_sync.node ]; then
  bash scripts/fetch-kernel.sh >/dev/null
  npm run --silent build
fi

# The C baseline: the same syscalls as our paths (lock/unlock, vgem fence wake, KMS flips). It takes the DRM
# UAPI from the system: the compiler's own drm/, linux-libc-dev-amd64-cross's on x64 (Debian's amd64
# linux-libc-dev has none), or the kernel's include/uapi/drm that fetch-kernel.sh keeps.
drm=""
triple=$("${CC:-cc}" -dumpmachine 2>/dev/null || true)
for d in ${triple:+"/usr/$triple/include/drm"} /usr/include/drm "${DMABUF_SYNC_CACHE:-$HOME/.cache/dmabuf-sync}/uapi/drm"; do
  if [ -f "$d/vgem_drm.h" ] && [ -f "$d/drm.h" ]; then drm=$d; break; fi
done
if [ -z "$drm" ]; then
  echo "bench: the C baseline needs the kernel's DRM UAPI headers (drm.h, drm_mode.h, vgem_drm.h): install" >&2
  echo "       linux-libc-dev (on Debian amd64: linux-libc-dev-amd64-cross), or run scripts/fetch-kernel.sh" >&2
  exit 1
fi
cflags=(-O2 -Wall -pthread "-I$drm")
if [ ! -x bench/raw-baseline ] || [ bench/raw-baseline.c -nt bench/raw-baseline ]; then
  "${CC:-cc}" "${cflags[@]}" -o bench/raw-baseline bench/raw-baseline.c
fi

# The lock-core figures (run.ts registers them as needing no devices); keep this list in step with it.
CORE_FIGS=(1c 2 3c 3pc 9c)
is_core() { local f; for f in "${CORE_FIGS[@]}"; do [ "$f" = "$1" ] && return 0; done; return 1; }
user_only="${DMABUF_BENCH_ONLY:-${BENCH_ONLY:-}}"
user_only="${user_only// /}"
core_list=$(IFS=,; echo "${CORE_FIGS[*]}")
device_only="" # empty: every dma-buf figure (the lock-core ones excluded)
if [ -n "$user_only" ]; then
  core=(); device=()
  IFS=, read -ra want <<< "$user_only"
  for f in "${want[@]}"; do
    [ -n "$f" ] || continue
    if is_core "$f"; then core+=("$f"); else device+=("$f"); fi
  done
  core_list=$(IFS=,; echo "${core[*]-}")
  device_only=$(IFS=,; echo "${device[*]-}")
fi

# Copies the results JSON printed between the markers in output file $1 to $2; false if there is none.
extract_json() {
  grep -q '^--- end results.json ---' "$1" || return 1
  sed -n '/^--- results.json ---$/,/^--- end results.json ---$/p' "$1" | sed '1d;$d' > "$2"
}

out=$(mktemp "${TMPDIR:-/tmp}/dmabuf-bench.XXXXXX")
host_out=$(mktemp "${TMPDIR:-/tmp}/dmabuf-bench-host.XXXXXX")
trap 'rm -f "$out" "$host_out"' EXIT
status=0

if [ -n "$core_list" ]; then
  echo "bench: lock-core figures ($core_list) natively on this host" >&2
  set +e
  DMABUF_BENCH_ONLY="$core_list" DMABUF_BENCH_RESULTS="$PWD/bench/results-host.json" node --expose-gc dist/bench/run.js > "$host_out"
  rc=$?
  set -e
  echo
  echo "== host-native lock core (no dma-buf, node $(node --version) on the host: $(uname -m), $(nproc) CPUs) =="
  # The table only: the JSON goes to bench/results-host.json.
  sed '/^--- results.json ---$/,$d' "$host_out"
  if extract_json "$host_out" bench/results-host.json; then
    echo "bench: wrote bench/results-host.json" >&2
  else
    echo "bench: the host run printed no results (exit $rc)" >&2
  fi
  [ "$rc" -eq 0 ] || status=$rc
fi

if [ -n "$user_only" ] && [ -z "$device_only" ]; then
  exit "$status"
fi
# DMABUF_BENCH_ONLY / _EXCLUDE for the dma-buf run (an explicit DMABUF_ setting wins over BENCH_ONLY).
if [ -n "$device_only" ]; then
  device_env=(DMABUF_BENCH_ONLY="$device_only")
else
  device_env=(DMABUF_BENCH_ONLY= DMABUF_BENCH_EXCLUDE="$(IFS=,; echo "${CORE_FIGS[*]}")")
fi
echo
set +e
if sh scripts/has-devices.sh; then
  echo "== dma-buf figures (real dma-bufs on this host) =="
  env "${device_env[@]}" node --expose-gc dist/bench/run.js | tee "$out"
else
  echo "bench: this host lacks udmabuf/vgem; running in the test VM (QEMU TCG: compare ratios, not times)" >&2
  echo "== dma-buf figures (in the test VM, QEMU TCG: compare ratios, not times) =="
  env "${device_env[@]}" DMABUF_VM_DISPLAY="${DMABUF_VM_DISPLAY:-bochs}" DMABUF_VM_TIMEOUT="${DMABUF_VM_TIMEOUT:-900}" bash scripts/vm.sh node --expose-gc dist/bench/run.js | tee "$out"
fi
rc=${PIPESTATUS[0]}
set -e
if extract_json "$out" bench/results.json; then
  echo "bench: wrote bench/results.json" >&2
else
  echo "bench: the run printed no results (exit $rc)" >&2
fi
[ "$rc" -eq 0 ] || status=$rc
exit "$status"
