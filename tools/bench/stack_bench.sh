#!/usr/bin/env bash
# End-to-end run latency through the whole stack (issue 7): the dev stack (relay, cloud, gateway
# member, two agents, TLS, real processes) runs a one-action flow N times through each connection,
# alternating direct / via-gateway so both see the same machine noise. Latency is the cloud's own
# record, created -> finished (RunFlow stored to result stored), so tetherctl's process start-up is
# not in it. Also split: created -> started (dispatch, relay, agent checks, password check, fork of
# the runner) and started -> finished (the flow itself, result back).
#
#   bazel run -c opt //tools/bench:stack_bench -- [runs per connection, default 40]
set -euo pipefail
n=${1:-40}
bin=$PWD
export DEVSTACK_DIR=${TMPDIR:-/tmp}/tether-stack-bench.$$
out=$DEVSTACK_DIR.out
tools/devstack/devstack.sh >"$out" 2>&1 &
stack=$!
trap 'kill -TERM $stack 2>/dev/null; wait $stack 2>/dev/null; rm -rf "$DEVSTACK_DIR" "$out"' EXIT
for _ in $(seq 1 1800); do
  grep -q 'Ctrl-C stops everything' "$out" 2>/dev/null && break
  kill -0 $stack 2>/dev/null || { cat "$out"; exit 1; }
  sleep 0.1
done
grep -q 'Ctrl-C stops everything' "$out" || { cat "$out"; echo "stack_bench: the dev stack did not come up" >&2; exit 1; }
export TETHER_CONFIG=$DEVSTACK_DIR/tetherctl.conf
tetherctl() { "$bin/tools/tetherctl/tetherctl" "$@"; }
py=/usr/bin/python3

printf '%s\n' '{"name":"noop","outputs":[{"name":"V"}],"actions":[{"action":"Variables.SetVariable","variable":"V","value":"x"}]}' \
  >"$DEVSTACK_DIR/noop.json"
tetherctl flows create noop --file "$DEVSTACK_DIR/noop.json" >/dev/null

results=$DEVSTACK_DIR/results
: >"$results"
run_one() {  # run_one CONNECTION: one run, waited for; appends "connection created started finished state"
  local id
  id=$(tetherctl --json run noop --connection "$1" | $py -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')
  while true; do
    line=$(tetherctl --json runs show "$id" | $py -c '
import json, sys
r = json.load(sys.stdin)
done = r["state"] in ("RUN_STATE_SUCCEEDED", "RUN_STATE_FAILED", "RUN_STATE_CANCELLED", "RUN_STATE_TIMED_OUT")
print(" ".join([r["created_at_unix_ms"], r["started_at_unix_ms"], r["finished_at_unix_ms"], r["state"]]) if done else "")')
    [[ -n "$line" ]] && break
  done
  echo "$1 $line" >>"$results"
}
run_one direct  # warm-up: first channel, first token
run_one via-gateway
: >"$results"
for _ in $(seq 1 "$n"); do
  run_one direct
  run_one via-gateway
done

$py - "$results" "$n" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print(f"stack_bench: {sys.argv[2]} runs per connection, alternating; cloud timestamps (ms)")
print(f"{'connection':<12} {'median':>7} {'p90':>6} {'max':>6} {'dispatch median':>16} {'flow+result median':>19} {'failed':>6}")
med = {}
for conn in ("direct", "via-gateway"):
    r = [x for x in rows if x[0] == conn]
    ok = [x for x in r if x[4] == "RUN_STATE_SUCCEEDED"]
    total = sorted(int(x[3]) - int(x[1]) for x in ok)
    disp = [int(x[2]) - int(x[1]) for x in ok]
    flow = [int(x[3]) - int(x[2]) for x in ok]
    med[conn] = statistics.median(total)
    p90 = total[int(0.9 * (len(total) - 1))]
    print(f"{conn:<12} {statistics.median(total):>7.0f} {p90:>6} {total[-1]:>6} {statistics.median(disp):>16.0f} {statistics.median(flow):>19.0f} {len(r) - len(ok):>6}")
print(f"via-gateway / direct median latency: {med['via-gateway'] / med['direct']:.2f}x")
PY
