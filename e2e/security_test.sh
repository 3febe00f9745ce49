#!/usr/bin/env bash
# Issue 7, scenario 6: security over the real binaries.
#
# (a) A second user (made by the admin with `tetherctl users create`) sees nothing of the first
#     user's machine: `machines list` omits it, `machines show` is NOT_FOUND (exit 2) by id and by
#     name, and so are a connection to it and a run through the first user's connection; nothing
#     is created and no flow runs.
# (b) A forged listener on the machine's relay entity is refused by the relay: HTTP 401 with a
#     token from a key the relay does not have, 403 with a token the relay signed for another
#     entity. A run queued meanwhile goes to the genuine agent.
# (c) Jobs injected straight through the relay (with a Send token made from the relay's own keys
#     file) but not signed by the cloud are refused by the agent: unsigned or signed by another
#     key under the cloud's key id (BAD_SIGNATURE), signed under another key id (UNKNOWN_KEY). The
#     agent logs each refusal and no flow runs. The control: the same job signed with the cloud's
#     key runs, so only the signature made the difference.
# (d) A deleted connection's envelope is gone from the cloud's disk: its ciphertext (read from the
#     database, since no API returns it) is in the cloud's files before `connections delete` and
#     in none of them (WAL, SSTs, manifest) after, both for an envelope still in the WAL and for
#     one already in an SST file; another connection's envelope is still there.
set -euo pipefail
source e2e/lib.sh
e2e_init
TOOLS=$E2E_BIN/e2e/tools

start_relay
start_cloud
register_agent desk
start_agent desk
M=$(machine_id desk)
tctl connections create alice-conn --machine desk --username "$ACCOUNT" \
  --password-file "$ACCOUNT_PASSWORD_FILE" >/dev/null
CONN=$(tctl connections show alice-conn --json | json_field connection_id)
create_marker_flow marker 1000
first_run=$(queue_run marker alice-conn a1)
e2e_wait "the first user's run" 30 all_runs_terminal

echo "--- (a) another user sees nothing of the machine"
(umask 077; tctl users create bob >"$E2E_DIR/bob.token")
bob() { tctl --config "$E2E_DIR/bob.conf" "$@"; }
bob login --cloud "$CLOUD_ADDR" --ca "$CA" --token-file "$E2E_DIR/bob.token" >/dev/null
[[ $(bob whoami --json | json_field user.name) == bob ]] || e2e_fail "not logged in as bob"
bob machines list --json >"$E2E_DIR/bob-machines.json"
if grep -q "$M" "$E2E_DIR/bob-machines.json"; then e2e_fail "bob's machines list shows $M"; fi
tctl machines list --json | grep -q "$M" || e2e_fail "the check cannot work: alice's list lacks $M"
expect_exit 2 bob machines show "$M"
expect_exit 2 bob machines show desk
expect_exit 2 bob machines delete "$M"
# The target is resolved before any password is asked for: NOT_FOUND, and nothing is sealed.
expect_exit 2 bob connections create stolen --machine "$M" --username "$ACCOUNT" \
  --password-file "$ACCOUNT_PASSWORD_FILE"
expect_exit 2 bob connections show "$CONN"
bob flows create bob-flow --file "$E2E_DIR/flow-marker.json" >/dev/null
expect_exit 2 bob run bob-flow --connection "$CONN" --input Tag=b1
expect_exit 2 bob runs show "$first_run"
[[ $(bob connections list --json | json_field connections) == "[]" ]] || e2e_fail "bob has connections"
[[ $(bob runs list --json | json_field runs) == "[]" ]] || e2e_fail "bob has runs"
[[ ! -e "$MARKERS/b1" ]] || e2e_fail "bob's run executed"

echo "--- (b) a forged listener is refused by the relay; the run goes to the genuine agent"
genuine_run=$(queue_run marker alice-conn a2)
"$TOOLS/forged_listener" --relay_url="$RELAY_URL" --ca="$CA" --entity="machine-$M" \
  --attempts=5 >"$E2E_DIR/forged-401.out" 2>&1 || e2e_fail "forged listener (random key): exit $?: $(cat "$E2E_DIR/forged-401.out")"
"$TOOLS/forged_listener" --relay_url="$RELAY_URL" --ca="$CA" --entity="machine-$M" \
  --keys_file="$RELAY_KEYS" --token_entity=machine-m-someone-else --attempts=5 \
  >"$E2E_DIR/forged-403.out" 2>&1 || e2e_fail "forged listener (other entity): exit $?: $(cat "$E2E_DIR/forged-403.out")"
cat "$E2E_DIR"/forged-40?.out
[[ $(grep -c '"event":"refused","http_status":401' "$E2E_DIR/forged-401.out") == 5 ]] ||
  e2e_fail "a token signed with an unknown key was not refused with 401 five times"
[[ $(grep -c '"event":"refused","http_status":403' "$E2E_DIR/forged-403.out") == 5 ]] ||
  e2e_fail "a token for another entity was not refused with 403 five times"
grep -q '"auth_refused","entity":"machine-'"$M" "$LOGS/relay.log" || e2e_fail "the relay logged no refusal"
e2e_wait "the genuine run" 30 all_runs_terminal
[[ $(run_field "$genuine_run" state) == RUN_STATE_SUCCEEDED ]] || e2e_fail "the run did not succeed"
[[ $(run_field "$genuine_run" machine_id) == "$M" ]] || e2e_fail "the run went elsewhere"

echo "--- (c) jobs injected through the relay without the cloud's signature are refused"
key_id=$(sed -n 's/^cloud_signing_key_id: "\(.*\)"$/\1/p' "$E2E_DIR/agent-desk/agent.conf")
[[ -n "$key_id" ]] || e2e_fail "no pinned key id in agent.conf"
pub=$(tctl machines show desk --json | json_field x25519_pub)
inject() {  # inject SIGN_MODE: prints the agent's answer
  "$TOOLS/inject_job" --relay_url="$RELAY_URL" --ca="$CA" --relay_keys_file="$RELAY_KEYS" \
    --machine_id="$M" --machine_pub_b64="$pub" --cloud_key_id="$key_id" \
    --cloud_key_file="$CLOUD_DATA/cloud-signing.key" --sign="$1" --job_id="job-injected-$1" \
    --username="$ACCOUNT" --password_file="$ACCOUNT_PASSWORD_FILE" --marker="$E2E_DIR/injected-$1"
}
for case in none:JOB_REJECT_CODE_BAD_SIGNATURE other_key:JOB_REJECT_CODE_BAD_SIGNATURE \
            other_key_id:JOB_REJECT_CODE_UNKNOWN_KEY; do
  mode=${case%%:*} code=${case#*:}
  answer=$(inject "$mode") || e2e_fail "no answer to the injected job ($mode)"
  echo "sign=$mode: $answer"
  [[ $(json_field job_rejected.code <<<"$answer") == "$code" ]] || e2e_fail "sign=$mode: not $code"
  grep -q '"job_refused","job_id":"job-injected-'"$mode"'","code":"'"$code"'"' "$LOGS/agent-desk.log" ||
    e2e_fail "the agent did not log refusing job-injected-$mode"
  if grep -q '"job_accepted","job_id":"job-injected-'"$mode"'"' "$LOGS/agent-desk.log"; then
    e2e_fail "the agent accepted job-injected-$mode"
  fi
  [[ ! -e "$E2E_DIR/injected-$mode" ]] || e2e_fail "the injected flow ran (sign=$mode)"
done
answer=$(inject cloud) || e2e_fail "no answer to the control job"
echo "sign=cloud (control): $answer"
grep -q '"job_result".*JOB_STATE_SUCCEEDED' <<<"$answer" || e2e_fail "the control job did not run"
[[ $(cat "$E2E_DIR/injected-cloud") == injected ]] || e2e_fail "the control job wrote no marker"

echo "--- (d) a deleted connection's envelope is erased from the cloud's files"
envelope() { "$TOOLS/envelope_bytes" --db="$CLOUD_DATA/db" --connection_id="$1"; }
connection_id() { tctl connections show "$1" --json | json_field connection_id; }
tctl connections create in-sst --machine desk --username "$ACCOUNT" --password-file "$ACCOUNT_PASSWORD_FILE" >/dev/null
# A clean stop flushes the memtables: this envelope moves from the WAL to an SST file.
stop_component cloud TERM
[[ $STOPPED_STATUS == 0 ]] || e2e_fail "the cloud exited $STOPPED_STATUS on SIGTERM"
start_cloud
tctl connections create in-wal --machine desk --username "$ACCOUNT" --password-file "$ACCOUNT_PASSWORD_FILE" >/dev/null
declare -A id bytes where
for name in in-sst in-wal alice-conn; do
  id[$name]=$(connection_id "$name")
  bytes[$name]=$(envelope "${id[$name]}")
  [[ ${#bytes[$name]} -ge 64 ]] || e2e_fail "no envelope for $name"
  where[$name]=$(files_containing "$CLOUD_DATA" "${bytes[$name]}" | xargs -r -n1 basename | tr '\n' ' ')
  echo "$name: envelope in ${where[$name]:-(no file)}"
  [[ -n "${where[$name]}" ]] || e2e_fail "the scan does not find $name's envelope before the delete"
done
[[ ${where[in-sst]} == *.sst* ]] || e2e_fail "in-sst's envelope is not in an SST file: ${where[in-sst]}"
[[ ${where[in-wal]} == *.log* ]] || e2e_fail "in-wal's envelope is not in the WAL: ${where[in-wal]}"
tctl connections delete in-sst >/dev/null
tctl connections delete in-wal >/dev/null
# Erased when the delete returns: no file of the data directory holds the bytes any more.
for name in in-sst in-wal; do
  left=$(files_containing "$CLOUD_DATA" "${bytes[$name]}")
  [[ -z "$left" ]] || e2e_fail "$name's envelope is still on disk after the delete, in: $left"
  expect_exit 3 envelope "${id[$name]}"
done
[[ -n $(files_containing "$CLOUD_DATA" "${bytes[alice-conn]}") ]] || e2e_fail "the kept connection's envelope is gone too"
# A failed compaction would be logged (and leave the bytes, failing the check above).
if grep -q '"envelope_erase_failed"' "$LOGS/cloud.log"; then e2e_fail "the cloud failed to erase envelopes"; fi
echo "PASS"
