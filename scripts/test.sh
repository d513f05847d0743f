#!/usr/bin/env bash
# The test command (npm test): builds, runs the unit tests on this host, then the integration tests on real
# kernels: on this host if it has udmabuf, dma_heap and vgem, and in the test VM on each machine of
# DMABUF_TEST_MACHINES (arch/kernel pairs, default "x64/6.12 arm64/6.12 x64/5.10"; add arm/6.12 for the
# 32-bit user space, or name one machine for a quicker run). The kernels are fetched only when a VM runs.
# Results come from jest's JSON output. Prints a count per run and per machine, and ends with the plain line
# "tests: N passed, N failed[, N skipped]". Exit status 1 on any failure or a run that did not finish.
# The display tests run in the x64 VM once per emulated display (DMABUF_TEST_DISPLAYS, default
# "virtio:own bochs:own cirrus:import", see scripts/test-display.sh; "" leaves them out).
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT

npm run --silent build || exit 1

node_modules/.bin/jest --selectProjects unit --json --outputFile="$LOGS/unit.json"
runs=("unit=$LOGS/unit.json")

MACHINES=${DMABUF_TEST_MACHINES:-x64/6.12 arm64/6.12 x64/5.10}
times=()
i=0
for m in $MACHINES; do
  i=$((i + 1))
  arch=${m%/*} kernel=${m#*/}
  start=$(date +%s)
  if [ "$m" = x64/6.12 ] && sh scripts/has-devices.sh --heap; then
    label=host
    DMABUF_TEST_RESULTS="$LOGS/vm-$i.json" bash scripts/test-vm.sh
  else
    label=$m
    DMABUF_VM_ARCH=$arch DMABUF_VM_KERNEL=$kernel DMABUF_TEST_RESULTS="$LOGS/vm-$i.json" bash scripts/test-vm.sh
  fi
  runs+=("$label=$LOGS/vm-$i.json")
  times+=("$label $(( $(date +%s) - start )) s")
done

# The display tests: one x64 VM run per emulated display device (scripts/test-display.sh).
for run in ${DMABUF_TEST_DISPLAYS-virtio:own bochs:own cirrus:import}; do
  DMABUF_TEST_DISPLAYS=$run DMABUF_TEST_RESULTS="$LOGS/display-${run%%:*}.json" bash scripts/test-display.sh
  runs+=("display ${run%%:*}=$LOGS/display-${run%%:*}.json")
done

echo
echo "integration run times: $(IFS=,; echo "${times[*]}" | sed 's/,/, /g')"
node scripts/test-summary.js "${runs[@]}"
