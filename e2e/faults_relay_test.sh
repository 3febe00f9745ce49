#!/usr/bin/env bash
# Issue 7, scenario 5a: the relay restarted mid-run.
#
# A direct agent and an agent behind a gateway member each run a flow that writes a start marker,
# waits 3 s and writes an end marker. While both run, the relay is killed with SIGKILL and started
# again on the same port. Both runs still succeed, each flow having started once: the agent and
# the member reconnect their listeners, the cloud reconnects its channels and asks (QueryJob) for
# what it missed (docs/CLOUD.md "Links"). Two more runs afterwards show the stack is whole again.
set -euo pipefail
source e2e/lib.sh
e2e_init

start_relay
start_cloud
register_agent desk-direct
create_cluster site gw-1
start_gateway gw-1
register_agent desk-gw --cluster site
start_agent desk-direct
start_gateway_agent desk-gw gw-1
tctl connections create direct --machine desk-direct --username "$ACCOUNT" \
  --password-file "$ACCOUNT_PASSWORD_FILE" >/dev/null
tctl connections create via-gw --cluster site --username "$ACCOUNT" \
  --password-file "$ACCOUNT_PASSWORD_FILE" >/dev/null
create_marker_flow slow 3000

direct_run=$(queue_run slow direct d1)
gateway_run=$(queue_run slow via-gw g1)
both_running() {
  runs_true "sum(r['state'] == 'RUN_STATE_RUNNING' for r in runs) == 2"
}
e2e_wait "both runs to be running" 30 both_running
stop_component relay KILL
e2e_log "relay killed"
# Mid-run: both flows have started and neither has finished.
for tag in d1 g1; do
  grep -qx "start $tag" "$MARKERS/$tag" || e2e_fail "flow $tag had not started when the relay died"
  if grep -q "^end" "$MARKERS/$tag"; then e2e_fail "flow $tag had already ended when the relay died"; fi
done
start_relay
e2e_log "relay restarted on port $RELAY_PORT"

e2e_wait "both runs to end after the relay restart" 60 all_runs_terminal
for run in "$direct_run" "$gateway_run"; do
  [[ $(run_field "$run" state) == RUN_STATE_SUCCEEDED ]] || e2e_fail "run $run did not succeed"
done
# Both listeners came back to the new relay process.
new_relay_log=$(current_log relay)
grep -q '"listener_connected".*"entity":"machine-' <<<"$new_relay_log" ||
  e2e_fail "the direct agent did not reconnect to the restarted relay"
grep -q '"listener_connected".*"entity":"cluster-' <<<"$new_relay_log" ||
  e2e_fail "the gateway member did not reconnect to the restarted relay"

queue_run slow direct d2 >/dev/null
queue_run slow via-gw g2 >/dev/null
e2e_wait "two more runs after the restart" 60 all_runs_terminal
check_runs --expect 4
echo "PASS"
