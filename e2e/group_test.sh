#!/usr/bin/env bash
# Issue 7, scenario 3: a machine group of two agents, one of them SIGKILLed mid-queue.
#
# Two agents register and join one group with the group password (`agent join-group --create` on
# the first, `join-group` on the second; the password from a 0600 file). One connection to the
# group; 12 runs of a flow that writes a start marker, waits 300 ms and writes an end marker.
# Once desk-a has finished a run and is running another, it is killed with SIGKILL. Then:
#   - desk-b runs every other run; the run desk-a was executing stays pinned to desk-a (never
#     given to desk-b: docs/CLOUD.md "Pinning") and is not resolved while desk-a is away;
#   - desk-a restarts; its pinned run is resolved there, FAILED "interrupted: the agent stopped
#     during the run" (agent/README.md: a job interrupted by the agent's death is never re-run);
#   - every run is terminal, SUCCEEDED on desk-a or desk-b (both did some) or that one FAILED, and
#     no flow started twice (markers).
set -euo pipefail
source e2e/lib.sh
e2e_init

start_group_of_two pool
members=$(tctl groups show pool --json | json_field machine_ids)
[[ $members == *"$A"* && $members == *"$B"* ]] || e2e_fail "group members are $members, not $A and $B"

tctl connections create pool-conn --group pool --username "$ACCOUNT" \
  --password-file "$ACCOUNT_PASSWORD_FILE" >/dev/null
create_marker_flow marker 300
for i in $(seq -w 1 12); do queue_run marker pool-conn "t$i" >/dev/null; done

# desk-a has finished one run and is executing another: kill it now.
a_mid_queue() {
  runs_true "any(r['machine_id'] == '$A' and r['state'] == 'RUN_STATE_SUCCEEDED' for r in runs) and
             any(r['machine_id'] == '$A' and r['state'] == 'RUN_STATE_RUNNING' for r in runs) and
             any(r['state'] == 'RUN_STATE_QUEUED' for r in runs)"
}
e2e_wait "desk-a to run its second run with runs still queued" 60 a_mid_queue
stop_component agent-desk-a KILL
e2e_log "desk-a killed"

# desk-b takes every run but the one pinned to desk-a, which waits for desk-a.
all_but_pinned_done() { runs_true "all(terminal(r) or r['machine_id'] == '$A' for r in runs)"; }
e2e_wait "desk-b to run every run not pinned to desk-a" 60 all_but_pinned_done
pinned=$(runs_eval "[r['run_id'] for r in runs if not terminal(r)]")
e2e_log "pinned to desk-a while it is down: ${pinned:-(none)}"
[[ $(wc -w <<<"$pinned") -le 1 ]] || e2e_fail "more than one run is pinned to desk-a: $pinned"
runs_true "any(r['machine_id'] == '$B' and r['state'] == 'RUN_STATE_SUCCEEDED' for r in runs)" ||
  e2e_fail "desk-b ran nothing"

start_agent desk-a
e2e_wait "every run to end once desk-a is back" 60 all_runs_terminal
if [[ -n "$pinned" ]]; then
  [[ $(run_field "$pinned" machine_id) == "$A" ]] || e2e_fail "the pinned run $pinned ended elsewhere"
fi
check_runs --expect 12 --failed_max 1 --failed_error '^interrupted: the agent stopped during the run' \
  --failed_machine "$A" --machines "$A,$B"
echo "PASS"
