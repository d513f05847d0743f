#!/usr/bin/env bash
# The test command (npm test): builds, runs the unit tests on this host on each supported Node line, then the
# integration tests on real kernels: on this host if it has udmabuf, dma_heap and vgem, and in the test VM on
# each machine of DMABUF_TEST_MACHINES. The kernels and other Node lines are fetched only when a run needs
# them (scripts/fetch-kernel.sh, scripts/fetch-node.sh). Results come from jest's JSON output. Prints a count
# per run, per machine and per Node line, and ends with the plain line "tests: N passed, N failed[, N skipped]".
# Exit status 1 on any failure or a run that did not finish.
#   DMABUF_TEST_NODES     Node lines of the unit runs (default "20 22 24"; "" = this host's node only)
#   DMABUF_TEST_MACHINES  arch/kernel[@node] runs of the integration tests (default below; a run without
#                         @node uses this host's node on x64, the same line on arm); add arm/6.12 for the
#                         32-bit user space, or name one machine for a quicker run
#   DMABUF_TEST_DISPLAYS  the display runs in the x64 VM (default "virtio:own bochs:own cirrus:import", see
#                         scripts/test-display.sh; "" leaves them out), on DMABUF_TEST_DISPLAY_NODE (default 24)
# The default matrix (docs/testing.md says why): x64 6.12 on Node 20, 22 and 24; arm64 6.12 and x64 5.10 on 24.
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT

npm run --silent build || exit 1

runs=()
times=()
# A Node line's label: "node <version>" of the node that ran.
node_label() { echo "node $("$1/node" -p 'process.versions.node')"; }

# The unit tests, once per Node line (jest's workers and the tests' children run on process.execPath).
NODES=${DMABUF_TEST_NODES-20 22 24}
for v in ${NODES:-""}; do
  bin=$(bash scripts/node-bin.sh --reachable x64 "$v") || { runs+=("unit node $v=$LOGS/missing"); continue; }
  label="unit $(node_label "$bin")"
  echo "unit tests: $label" >&2
  PATH="$bin:$PATH" node_modules/.bin/jest --selectProjects unit --json --outputFile="$LOGS/unit-$v.json"
  runs+=("$label=$LOGS/unit-$v.json")
done

MACHINES=${DMABUF_TEST_MACHINES:-x64/6.12@20 x64/6.12@22 x64/6.12@24 arm64/6.12@24 x64/5.10@24}
i=0
for m in $MACHINES; do
  i=$((i + 1))
  node=""; case "$m" in *@*) node=${m#*@}; m=${m%@*} ;; esac
  arch=${m%/*} kernel=${m#*/}
  start=$(date +%s)
  if [ "$m" = x64/6.12 ] && [ -z "$node" ] && sh scripts/has-devices.sh --heap; then
    label=host
    DMABUF_TEST_RESULTS="$LOGS/vm-$i.json" bash scripts/test-vm.sh
  else
    label="$m${node:+ node $node}"
    DMABUF_VM_NODE=$node DMABUF_VM_ARCH=$arch DMABUF_VM_KERNEL=$kernel DMABUF_TEST_RESULTS="$LOGS/vm-$i.json" \
      bash scripts/test-vm.sh
  fi
  runs+=("$label=$LOGS/vm-$i.json")
  times+=("$label $(( $(date +%s) - start )) s")
done

# The display tests: one x64 VM run per emulated display device (scripts/test-display.sh).
dnode=${DMABUF_TEST_DISPLAY_NODE-24}
for run in ${DMABUF_TEST_DISPLAYS-virtio:own bochs:own cirrus:import}; do
  DMABUF_VM_NODE=$dnode DMABUF_TEST_DISPLAYS=$run \
    DMABUF_TEST_RESULTS="$LOGS/display-${run%%:*}.json" bash scripts/test-display.sh
  runs+=("display ${run%%:*}${dnode:+ node $dnode}=$LOGS/display-${run%%:*}.json")
done

echo
echo "integration run times: $(IFS=,; echo "${times[*]}" | sed 's/,/, /g')"
node scripts/test-summary.js "${runs[@]}"
