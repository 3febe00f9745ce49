#!/usr/bin/env bash
# Runs Tether's whole test suite: installs what is missing (tools/install_deps.sh), then
# `bazel test //...`. Extra arguments go to bazel (e.g. --config=asan).
# The last line printed is "N passed, M failed", counting test targets; a target that failed to
# build or did not run counts as failed.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! tools/install_deps.sh; then
  echo "tools/install_deps.sh failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The test targets `bazel test //...` runs: those tagged manual are not among them.
if ! bazel query 'tests(//...) except attr(tags, "manual", //...)' --output=label >"$work/targets" 2>"$work/query.log"; then
  cat "$work/query.log" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# --nocache_test_results: outputs come from the disk cache, but every test really runs.
bazel test //... --keep_going --nocache_test_results --test_summary=short --build_event_json_file="$work/events" "$@"
bazel_status=$?

python3 - "$work/targets" "$work/events" "$bazel_status" <<'PY'
import json, sys
targets_path, events_path, bazel_status = sys.argv[1], sys.argv[2], int(sys.argv[3])
targets = [t.strip() for t in open(targets_path) if t.strip()]
status = {}
try:
    with open(events_path) as f:
        for line in f:
            event = json.loads(line)
            label = event.get("id", {}).get("testSummary", {}).get("label")
            if label and "testSummary" in event:
                status[label] = event["testSummary"].get("overallStatus", "NO_STATUS")
except FileNotFoundError:
    pass
passed = sum(1 for t in targets if status.get(t) == "PASSED")
failed = len(targets) - passed
for t in targets:
    if status.get(t) != "PASSED":
        print(f"not passed: {t} ({status.get(t, 'did not run')})", file=sys.stderr)
if bazel_status != 0 and failed == 0:
    failed = 1  # bazel failed outside any test target
print(f"{passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)
PY
