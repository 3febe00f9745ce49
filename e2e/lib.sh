# e2e/lib.sh: the real binaries on loopback for the //e2e tests, each component started, killed
# and restarted on its own (tools/devstack/devstack.sh starts the same binaries with the same
# flags, all at once). Source it from a test (bazel test starts us in the runfiles tree):
#
#   source e2e/lib.sh
#   e2e_init                                   # certificates, relay keys, an account, the trap
#   start_relay; start_cloud                   # port 0 + port files; restart keeps the ports
#   register_agent desk-1; start_agent desk-1  # data dir $E2E_DIR/agent-desk-1
#   create_marker_flow marker 300              # a flow that appends start/end lines per run
#   run=$(queue_run marker conn t01)
#   stop_component agent-desk-1 KILL; start_agent desk-1
#   check_runs --expect 12 ...                 # e2e/check_runs.py: states and markers
#
# Everything lives under $E2E_DIR ($TEST_TMPDIR/e2e): certificates, keys, data directories, port
# files, logs ($E2E_DIR/logs/<component>.log, appended across restarts). The EXIT trap kills
# every process started here (SIGKILL, by pid) and, when the test failed, prints the end of each
# log. Waits poll a condition with a deadline (e2e_wait); nothing sleeps to synchronise.
set -euo pipefail

E2E_BIN=$PWD
for tool in relay/relay_server cloud/cloud_server gateway/gateway agent/agent agent/runner/flow_runner \
            agent/accounts/account_file_tool tools/tetherctl/tetherctl tools/devcerts/devcerts; do
  [[ -x "$E2E_BIN/$tool" ]] || { echo "e2e: $tool is missing from the runfiles" >&2; exit 2; }
done

declare -A E2E_PIDS=()

e2e_log() { echo "e2e: $*" >&2; }

# Prints FAIL and the reason, then exits (the trap shows the logs).
e2e_fail() {
  echo "FAIL: $*" >&2
  exit 1
}

e2e_cleanup() {
  local rc=$?
  trap - EXIT
  local name
  for name in "${!E2E_PIDS[@]}"; do kill -KILL "${E2E_PIDS[$name]}" 2>/dev/null || true; done
  for name in "${!E2E_PIDS[@]}"; do wait "${E2E_PIDS[$name]}" 2>/dev/null || true; done
  if [[ $rc != 0 && -d "${E2E_DIR:-}/logs" ]]; then
    local log
    for log in "$E2E_DIR"/logs/*.log; do
      echo "=== $log (last 40 lines)" >&2
      tail -40 "$log" >&2 || true
    done
  fi
  exit "$rc"
}

# e2e_init: fresh state under $TEST_TMPDIR/e2e, dev certificates, the relay's keys, a local account
# (file backend) with a random password, tetherctl's config path, and the cleanup trap.
e2e_init() {
  E2E_DIR=$TEST_TMPDIR/e2e
  rm -rf "$E2E_DIR"
  mkdir -p "$E2E_DIR/logs" "$E2E_DIR/markers"
  chmod 700 "$E2E_DIR"
  trap e2e_cleanup EXIT
  LOGS=$E2E_DIR/logs
  MARKERS=$E2E_DIR/markers
  "$E2E_BIN/tools/devcerts/devcerts" --out_dir="$E2E_DIR/certs" >"$LOGS/devcerts.log" 2>&1
  CA=$E2E_DIR/certs/ca.pem
  CERT=$E2E_DIR/certs/server.pem
  KEY=$E2E_DIR/certs/server.key
  RELAY_KEYS=$E2E_DIR/relay.keys
  write_secret "$RELAY_KEYS" "cloud $(random_hex) Manage"
  # The local account flows run as: this user, with a password in the file backend.
  ACCOUNT=$(id -un)
  ACCOUNT_PASSWORD_FILE=$E2E_DIR/account.password
  write_secret "$ACCOUNT_PASSWORD_FILE" "$(random_hex)"
  ACCOUNTS=$E2E_DIR/accounts
  "$E2E_BIN/agent/accounts/account_file_tool" add "$ACCOUNTS" "$ACCOUNT" \
    --password-file "$ACCOUNT_PASSWORD_FILE" >"$LOGS/accounts.log" 2>&1
  export TETHER_CONFIG=$E2E_DIR/tetherctl.conf
  RELAY_PORT=0
  CLOUD_PORT=0
  CLOUD_HTTP_PORT=0
  CLOUD_DATA=$E2E_DIR/cloud
  ADMIN_TOKEN=$E2E_DIR/admin.token
}

random_hex() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
write_secret() { (umask 077; printf '%s\n' "$2" >"$1"); }

# e2e_wait WHAT TIMEOUT_S COMMAND...: runs COMMAND every 0.1 s until it succeeds; fails the test
# naming WHAT when TIMEOUT_S pass first.
e2e_wait() {
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    ((SECONDS < deadline)) || e2e_fail "timed out after ${timeout}s waiting for $what"
    sleep 0.1
  done
}

# e2e_spawn NAME COMMAND...: starts COMMAND in the background, output appended to logs/NAME.log.
e2e_spawn() {
  local name=$1
  shift
  [[ -z "${E2E_PIDS[$name]:-}" ]] || e2e_fail "$name is already running"
  echo "=== e2e: starting $name: $*" >>"$LOGS/$name.log"
  "$@" >>"$LOGS/$name.log" 2>&1 &
  E2E_PIDS[$name]=$!
}

# e2e_pid NAME: the pid of a running component.
e2e_pid() { echo "${E2E_PIDS[$1]:?$1 is not running}"; }

# e2e_alive NAME: true while the component's process runs.
e2e_alive() { [[ -n "${E2E_PIDS[$1]:-}" ]] && kill -0 "${E2E_PIDS[$1]}" 2>/dev/null; }

# stop_component NAME [SIGNAL]: sends SIGNAL (default TERM) and reaps the process. Sets
# STOPPED_STATUS to the exit status it ended with (128+N when the signal killed it).
stop_component() {
  local name=$1 signal=${2:-TERM}
  local pid=${E2E_PIDS[$name]:?$name is not running}
  kill -s "$signal" "$pid" 2>/dev/null || true
  STOPPED_STATUS=0
  wait "$pid" 2>/dev/null || STOPPED_STATUS=$?
  unset "E2E_PIDS[$name]"
  echo "=== e2e: $name stopped by SIG$signal, exit status $STOPPED_STATUS" >>"$LOGS/$name.log"
}

# current_log NAME: the component's log since its last start.
current_log() {
  awk '/^=== e2e: starting /{text = ""} {text = text $0 "\n"} END {printf "%s", text}' "$LOGS/$1.log"
}

# wait_port_file NAME FILE: the component wrote its port file (fails at once if it died).
wait_port_file() {
  local name=$1 file=$2
  port_file_ready() {
    e2e_alive "$name" || e2e_fail "$name exited during start-up (see $LOGS/$name.log)"
    [[ -s "$file" ]]
  }
  e2e_wait "$name's port file" 30 port_file_ready
}

# start_relay [FLAG...]: the relay on 127.0.0.1 over TLS, on $RELAY_PORT (0 the first time: a free
# port, which later starts reuse). Sets RELAY_PORT and RELAY_URL.
start_relay() {
  rm -f "$E2E_DIR/relay.port"
  e2e_spawn relay "$E2E_BIN/relay/relay_server" --listen="127.0.0.1:$RELAY_PORT" \
    --port_file="$E2E_DIR/relay.port" --tls_cert="$CERT" --tls_key="$KEY" \
    --sas_keys_file="$RELAY_KEYS" "$@"
  wait_port_file relay "$E2E_DIR/relay.port"
  RELAY_PORT=$(cat "$E2E_DIR/relay.port")
  RELAY_URL=https://localhost:$RELAY_PORT
}

# start_cloud [FLAG...]: the cloud over TLS on $CLOUD_PORT / $CLOUD_HTTP_PORT (0 the first time),
# data in $CLOUD_DATA. The first start creates the admin user (token in $ADMIN_TOKEN) and logs
# tetherctl in as it. Sets CLOUD_ADDR.
start_cloud() {
  if [[ ! -s "$ADMIN_TOKEN" ]]; then
    (umask 077; "$E2E_BIN/cloud/cloud_server" admin create-user admin --admin --data_dir="$CLOUD_DATA" \
      >"$ADMIN_TOKEN" 2>>"$LOGS/cloud-admin.log")
  fi
  rm -f "$E2E_DIR/cloud.port" "$E2E_DIR/cloud-http.port"
  e2e_spawn cloud "$E2E_BIN/cloud/cloud_server" --listen="127.0.0.1:$CLOUD_PORT" \
    --port_file="$E2E_DIR/cloud.port" --http_listen="127.0.0.1:$CLOUD_HTTP_PORT" \
    --http_port_file="$E2E_DIR/cloud-http.port" --data_dir="$CLOUD_DATA" --tls_cert="$CERT" \
    --tls_key="$KEY" --relay_url="$RELAY_URL" --relay_ca="$CA" --relay_keys_file="$RELAY_KEYS" "$@"
  wait_port_file cloud "$E2E_DIR/cloud.port"
  wait_port_file cloud "$E2E_DIR/cloud-http.port"
  CLOUD_PORT=$(cat "$E2E_DIR/cloud.port")
  CLOUD_HTTP_PORT=$(cat "$E2E_DIR/cloud-http.port")
  CLOUD_ADDR=localhost:$CLOUD_PORT
  if [[ ! -s "$TETHER_CONFIG" ]]; then
    tctl login --cloud "$CLOUD_ADDR" --ca "$CA" --token-file "$ADMIN_TOKEN" >/dev/null
  fi
}

# tctl ARG...: tetherctl as the user runs it ($TETHER_CONFIG, or --config FILE).
tctl() { "$E2E_BIN/tools/tetherctl/tetherctl" "$@"; }

# expect_exit CODE COMMAND...: COMMAND must exit with CODE (its output goes to the test log).
expect_exit() {
  local want=$1
  shift
  local rc=0
  "$@" </dev/null >"$E2E_DIR/expect_exit.out" 2>&1 || rc=$?
  sed 's/^/  | /' "$E2E_DIR/expect_exit.out" >&2
  [[ $rc == "$want" ]] || e2e_fail "exit $rc, not $want: $*"
}

# register_agent NAME [FLAG...]: `agent register` as the admin user, data in $E2E_DIR/agent-NAME.
register_agent() {
  local name=$1
  shift
  "$E2E_BIN/agent/agent" register --cloud "$CLOUD_ADDR" --ca "$CA" --relay_ca "$CA" \
    --token-file "$ADMIN_TOKEN" --name "$name" --data_dir "$E2E_DIR/agent-$name" "$@" \
    >>"$LOGS/agent-$name.log" 2>&1 || e2e_fail "agent register $name failed (see $LOGS/agent-$name.log)"
}

# join_group NAME GROUP PASSWORD_FILE [--create]: `agent join-group` for a registered agent.
join_group() {
  local name=$1 group=$2 password_file=$3
  shift 3
  "$E2E_BIN/agent/agent" join-group --group "$group" --password-file "$password_file" \
    --token-file "$ADMIN_TOKEN" --data_dir "$E2E_DIR/agent-$name" "$@" >>"$LOGS/agent-$name.log" 2>&1 ||
    e2e_fail "agent join-group $name $group failed (see $LOGS/agent-$name.log)"
}

# start_group_of_two GROUP: relay and cloud, agents desk-a and desk-b registered, joined to GROUP
# with a fresh password (desk-a creates it) and running; sets A and B to their machine ids.
start_group_of_two() {
  local group=$1
  start_relay
  start_cloud
  register_agent desk-a
  register_agent desk-b
  write_secret "$E2E_DIR/group.password" "$(random_hex)"
  join_group desk-a "$group" "$E2E_DIR/group.password" --create
  join_group desk-b "$group" "$E2E_DIR/group.password"
  [[ -s "$E2E_DIR/agent-desk-b/group-x25519.key" ]] || e2e_fail "desk-b holds no group key"
  start_agent desk-a
  start_agent desk-b
  A=$(machine_id desk-a)
  B=$(machine_id desk-b)
}

# start_agent NAME [FLAG...]: `agent run` on its data directory (again after a stop: the same
# machine), then waits until this process reports its relay connection in status.json.
start_agent() {
  local name=$1
  shift
  e2e_spawn "agent-$name" "$E2E_BIN/agent/agent" run --data_dir "$E2E_DIR/agent-$name" \
    --accounts "file:$ACCOUNTS" --runner "$E2E_BIN/agent/runner/flow_runner" "$@"
  wait_agent_connected "$name"
}

# agent_connected NAME: status.json was written by the running process and says "connected".
agent_connected() {
  local name=$1
  e2e_alive "agent-$name" || e2e_fail "agent $name exited (see $LOGS/agent-$name.log)"
  python3 - "$E2E_DIR/agent-$name/status.json" "$(e2e_pid "agent-$name")" <<'PY'
import json, sys
try:
    status = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    sys.exit(1)
ok = str(status.get("pid")) == sys.argv[2] and status.get("connection", "").startswith("connected")
sys.exit(0 if ok else 1)
PY
}

wait_agent_connected() { e2e_wait "agent $1 to connect to its relay" 30 agent_connected "$1"; }

# machine_id NAME: the machine id tetherctl shows for a machine name.
machine_id() { tctl machines show "$1" --json | json_field machine_id; }

# json_field PATH: reads JSON on stdin, prints the value at PATH (dot-separated keys or list
# indexes), "" when absent.
json_field() {
  python3 -c '
import json, sys
value = json.load(sys.stdin)
for part in sys.argv[1].split("."):
    if isinstance(value, list):
        value = value[int(part)] if int(part) < len(value) else ""
    elif isinstance(value, dict):
        value = value.get(part, "")
    else:
        value = ""
print(value if not isinstance(value, (dict, list)) else json.dumps(value))
' "$1"
}

# create_marker_flow NAME WAIT_MS: a flow with one input, Tag, that appends "start TAG" to
# $MARKERS/TAG, waits WAIT_MS, then appends "end TAG". A run executed twice leaves two start
# lines; check_runs counts them.
create_marker_flow() {
  local name=$1 wait_ms=$2
  cat >"$E2E_DIR/flow-$name.json" <<EOF
{"name": "$name",
 "inputs": [{"name": "Tag", "type": "text"}],
 "actions": [
   {"action": "File.WriteText", "path": "$MARKERS/%Tag%", "text": "start %Tag%\n", "append": true},
   {"action": "Flow.Wait", "duration_ms": $wait_ms},
   {"action": "File.WriteText", "path": "$MARKERS/%Tag%", "text": "end %Tag%\n", "append": true}]}
EOF
  tctl flows create "$name" --file "$E2E_DIR/flow-$name.json" >/dev/null
}

# queue_run FLOW CONNECTION TAG: RunFlow without waiting; prints the run id.
queue_run() { tctl run "$1" --connection "$2" --input "Tag=$3" 2>>"$LOGS/tetherctl.log"; }

# runs_json: every run of the logged-in user, as tetherctl's JSON.
runs_json() { tctl runs list --limit 1000 --json; }

# run_field RUN_ID PATH: one field of a run (runs show --json).
run_field() { tctl runs show "$1" --json | json_field "$2"; }

# runs_eval PYTHON_EXPRESSION: prints the expression's value over `runs`, every run as JSON
# (r["run_id"], r["state"], r["machine_id"], r["inputs"]["Tag"], r["error"]["message"], ...);
# `terminal(r)` tells whether a run has ended.
runs_eval() {
  runs_json | python3 -c '
import json, sys
runs = json.load(sys.stdin).get("runs", [])
def terminal(r):
    return r["state"] in ("RUN_STATE_SUCCEEDED", "RUN_STATE_FAILED", "RUN_STATE_CANCELLED",
                          "RUN_STATE_TIMED_OUT")
value = eval(sys.argv[1], {"runs": runs, "terminal": terminal})
print(" ".join(value) if isinstance(value, list) else value)
' "$1"
}

# runs_true PYTHON_EXPRESSION: succeeds when the expression (see runs_eval) is true.
runs_true() { [[ $(runs_eval "bool($1)") == True ]]; }

all_runs_terminal() { runs_true "all(terminal(r) for r in runs)"; }

# check_runs [ARG...]: e2e/check_runs.py over every run and the markers (states, exactly-once).
check_runs() {
  runs_json >"$E2E_DIR/runs.json"
  python3 "$E2E_BIN/e2e/check_runs.py" --runs "$E2E_DIR/runs.json" --markers "$MARKERS" "$@" ||
    e2e_fail "the runs are not as expected (above)"
}

# files_containing DIR HEX: the files under DIR whose bytes contain the bytes HEX stands for.
files_containing() {
  python3 - "$1" "$2" <<'PY'
import os, sys
needle = bytes.fromhex(sys.argv[2])
for root, _, files in os.walk(sys.argv[1]):
    for name in files:
        path = os.path.join(root, name)
        try:
            with open(path, "rb") as f:
                if needle in f.read():
                    print(path)
        except OSError:
            pass  # deleted while we looked
PY
}

# create_cluster NAME MEMBER: a gateway cluster with its first member (data in
# $E2E_DIR/gateway-MEMBER), recovery key in a 0600 file.
create_cluster() {
  local cluster=$1 member=$2
  write_secret "$E2E_DIR/recovery-$cluster.key" "$(random_hex)"
  "$E2E_BIN/gateway/gateway" create-cluster --cloud "$CLOUD_ADDR" --ca "$CA" --token-file "$ADMIN_TOKEN" \
    --cluster "$cluster" --recovery-key-file "$E2E_DIR/recovery-$cluster.key" --relay_ca "$CA" \
    --name "$member" --data_dir "$E2E_DIR/gateway-$member" >>"$LOGS/gateway-$member.log" 2>&1 ||
    e2e_fail "gateway create-cluster failed (see $LOGS/gateway-$member.log)"
}

# start_gateway MEMBER: `gateway run` over TLS, its local relay and service on fresh ports (the
# first start) or the same ones (a restart). Sets GATEWAY_SERVICE_<MEMBER> (host:port for agents).
start_gateway() {
  local member=$1 dir=$E2E_DIR/gateway-$1
  local relay_port=0 service_port=0
  [[ -s "$dir.relay.port" ]] && relay_port=$(cat "$dir.relay.port")
  [[ -s "$dir.service.port" ]] && service_port=$(cat "$dir.service.port")
  rm -f "$dir.relay.port" "$dir.service.port"
  e2e_spawn "gateway-$member" "$E2E_BIN/gateway/gateway" run --data_dir "$dir" \
    --local_relay_listen "127.0.0.1:$relay_port" --service_listen "127.0.0.1:$service_port" \
    --tls_cert "$CERT" --tls_key "$KEY" --local_ca "$CA" \
    --relay_port_file "$dir.relay.port" --service_port_file "$dir.service.port"
  wait_port_file "gateway-$member" "$dir.service.port"
  printf -v "GATEWAY_SERVICE_${member//-/_}" '127.0.0.1:%s' "$(cat "$dir.service.port")"
}

# start_gateway_agent NAME MEMBER: an agent registered behind a cluster, run --via-gateway MEMBER.
start_gateway_agent() {
  local name=$1 member=$2
  local var="GATEWAY_SERVICE_${member//-/_}"
  start_agent "$name" --via-gateway "${!var}" --gateway_ca "$CA"
}
