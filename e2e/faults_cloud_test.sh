#!/usr/bin/env bash
# Issue 7, scenario 5b: the cloud SIGKILLed mid-dispatch and restarted on its ports and data.
#
# Two agents in a group; 20 runs of a flow that writes a start marker, waits 200 ms and writes an
# end marker. Once a few have succeeded the cloud is killed with SIGKILL, with runs queued, being
# dispatched and running, and started again on the same ports and data directory. The restarted
# cloud reloads every run that had not ended and resumes it (docs/CLOUD.md "Durability"): a run
# that may have reached an agent is asked for there, with the same job id, and the agent's ledger
# answers instead of running it again. Every run succeeds, each flow started exactly once.
set -euo pipefail
source e2e/lib.sh
e2e_init

start_group_of_two pool
tctl connections create pool-conn --group pool --username "$ACCOUNT" \
  --password-file "$ACCOUNT_PASSWORD_FILE" >/dev/null
create_marker_flow marker 200
for i in $(seq -w 1 20); do queue_run marker pool-conn "t$i" >/dev/null; done

a_few_done() {
  runs_true "sum(r['state'] == 'RUN_STATE_SUCCEEDED' for r in runs) >= 3 and
             sum(not terminal(r) for r in runs) >= 10"
}
e2e_wait "a few runs to succeed" 60 a_few_done
stop_component cloud KILL
e2e_log "cloud killed; flows started so far: $(cat "$MARKERS"/* | grep -c '^start')"
start_cloud
e2e_log "cloud restarted on port $CLOUD_PORT"

e2e_wait "every run to end after the cloud restart" 90 all_runs_terminal
# The restarted process resumed the runs the killed one left (not only found them all ended).
resumed=$(current_log cloud | grep '"runs_resumed"' || true)
[[ -n "$resumed" ]] || e2e_fail "the restarted cloud resumed no run"
e2e_log "restarted cloud: $resumed"
check_runs --expect 20 --machines "$A,$B"
echo "PASS"
