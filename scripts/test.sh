#!/usr/bin/env bash
# The test command (npm test): builds, runs the unit tests on this host, then the integration tests on a
# real kernel — on this host if it has udmabuf, dma_heap and vgem, otherwise in the test VM (scripts/vm.sh).
# Ends with one plain line: "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT

# The vgem test shim compiles against the DRM UAPI headers fetched with the VM kernel.
bash scripts/fetch-kernel.sh >/dev/null || exit 1
npm run --silent build || exit 1

jest=node_modules/.bin/jest
$jest --selectProjects unit 2>&1 | tee "$LOGS/unit.log"
unit=${PIPESTATUS[0]}
bash scripts/test-vm.sh 2>&1 | tee "$LOGS/vm.log"
vm=${PIPESTATUS[0]}

count() { grep -hE '^Tests:' "$LOGS"/*.log | grep -oE "[0-9]+ $1" | awk '{ s += $1 } END { print s + 0 }'; }
vmcount=$(grep -hE '^Tests:' "$LOGS/vm.log" | grep -oE '[0-9]+ total' | awk '{ s += $1 } END { print s + 0 }')
echo "integration tests executed on a real kernel: $vmcount"
# A suite that fails outside any test (e.g. the fd guard) counts as a failed test too.
failed=$(( $(count failed) + $(grep -hE '^Test Suites:' "$LOGS"/*.log | grep -oE '[0-9]+ failed' | awk '{ s += $1 } END { print s + 0 }') ))
echo "tests: $(count passed) passed, $failed failed"
if [ "$unit" -ne 0 ] || [ "$vm" -ne 0 ]; then exit 1; fi
if [ "$vmcount" -eq 0 ]; then echo "no integration test ran" >&2; exit 1; fi
