#!/usr/bin/env bash
# Issue 7, scenario 5c: the agent restarted mid-run, with SIGTERM and then with SIGKILL.
#
# One agent, four runs of a flow that writes a start marker, waits 1.5 s and writes an end marker.
# agent/README.md says what must happen:
#   - SIGTERM while t1 runs: the running job gets --shutdown_grace_s to finish, its result is
#     recorded and reported, then the agent exits 0. So t1 SUCCEEDED, reported while the agent is
#     down, and the queued runs wait (none starts on a stopping agent).
#   - The agent starts again and takes t2; SIGKILL while t2 runs: a job interrupted by the
#     agent's own death is ended FAILED ("interrupted: the agent stopped during the run") when the
#     agent starts again, never re-run.
#   - t3 and t4 then succeed; no flow started twice, none lost.
set -euo pipefail
source e2e/lib.sh
e2e_init

start_relay
start_cloud
register_agent desk
start_agent desk
M=$(machine_id desk)
tctl connections create direct --machine desk --username "$ACCOUNT" \
  --password-file "$ACCOUNT_PASSWORD_FILE" >/dev/null
create_marker_flow slow 1500
declare -A run
for tag in t1 t2 t3 t4; do run[$tag]=$(queue_run slow direct "$tag"); done

state_is() { [[ $(run_field "$1" state) == "$2" ]]; }

# SIGTERM mid-run: the job finishes within the grace period and is reported before the exit.
e2e_wait "t1 to run" 30 state_is "${run[t1]}" RUN_STATE_RUNNING
stop_component agent-desk TERM
[[ $STOPPED_STATUS == 0 ]] || e2e_fail "the agent exited $STOPPED_STATUS after SIGTERM, not 0"
grep -qx "end t1" "$MARKERS/t1" || e2e_fail "t1 did not finish within the agent's grace period"
e2e_wait "t1's result to reach the cloud while the agent is down" 30 state_is "${run[t1]}" RUN_STATE_SUCCEEDED
for tag in t2 t3 t4; do
  [[ ! -e "$MARKERS/$tag" ]] || e2e_fail "$tag started on a stopping agent"
  state=$(run_field "${run[$tag]}" state)
  [[ $state == RUN_STATE_QUEUED || $state == RUN_STATE_DISPATCHING ]] ||
    e2e_fail "$tag is $state while the agent is down"
done

# Back up; SIGKILL while t2 runs, and back up again at once.
start_agent desk
e2e_wait "t2 to run" 30 state_is "${run[t2]}" RUN_STATE_RUNNING
stop_component agent-desk KILL
if grep -q "^end" "$MARKERS/t2"; then e2e_fail "t2 had already finished when the agent was killed"; fi
start_agent desk

e2e_wait "every run to end" 60 all_runs_terminal
[[ $(run_field "${run[t2]}" state) == RUN_STATE_FAILED ]] || e2e_fail "t2 (interrupted) did not end FAILED"
grep -q '"job_interrupted"' <(current_log agent-desk) || e2e_fail "the restarted agent logged no job_interrupted"
check_runs --expect 4 --failed_max 1 --failed_error '^interrupted: the agent stopped during the run' \
  --failed_machine "$M"
echo "PASS"
