#!/usr/bin/env bash
# The local dev stack (issue 7): relay, cloud, one gateway member and two agents (one direct, one
# behind the gateway) on loopback, over TLS with fresh dev certificates; a demo user, flow and
# connections; one demo run through each agent; then it prints where to look and waits for
# Ctrl-C, which stops everything.
#
#   bazel run //tools/devstack              # keeps running until Ctrl-C
#   bazel run //tools/devstack -- --once    # stops after the demo runs (exit 0 if both succeeded)
#
# State goes to $DEVSTACK_DIR (default ~/.cache/tether/devstack), recreated at every start.
set -euo pipefail

once=false
[[ "${1:-}" == "--once" ]] && once=true

bin=$PWD  # bazel run / bazel test start us in the runfiles tree
for tool in relay/relay_server cloud/cloud_server gateway/gateway agent/agent agent/runner/flow_runner \
            agent/accounts/account_file_tool tools/tetherctl/tetherctl tools/devcerts/devcerts; do
  [[ -x "$bin/$tool" ]] || { echo "devstack: $tool is missing (run it with bazel run //tools/devstack)" >&2; exit 2; }
done

dir=${DEVSTACK_DIR:-${TEST_TMPDIR:-$HOME/.cache/tether}/devstack}
rm -rf "$dir"
mkdir -p "$dir"
chmod 700 "$dir"
logs=$dir/logs
mkdir -p "$logs" "$dir/pids"

pids=()
started() { pids+=("$1"); echo "$1" >"$dir/pids/$2.pid"; }  # started PID NAME (pids/NAME.pid for tests)
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'echo; echo "devstack: stopping"; exit 0' INT TERM

wait_for() {  # wait_for FILE WHAT: a port file (or any file) to appear
  for _ in $(seq 1 600); do
    [[ -s "$1" ]] && return 0
    sleep 0.1
  done
  echo "devstack: $2 did not start; see $logs" >&2
  exit 1
}
secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
write_secret() { (umask 077; printf '%s\n' "$2" >"$1"); }

user=$(id -un)
echo "devstack: state and logs in $dir"

# Certificates: one dev CA, one server certificate for localhost and 127.0.0.1.
"$bin/tools/devcerts/devcerts" --out_dir="$dir/certs" >"$logs/devcerts.log" 2>&1
ca=$dir/certs/ca.pem
cert=$dir/certs/server.pem
key=$dir/certs/server.key

# Relay.
write_secret "$dir/relay.keys" "cloud $(secret) Manage"
# DEVSTACK_RELAY_FLAGS adds relay flags (e.g. --refuse_websocket_upgrade, as a proxy that strips
# WebSocket upgrades would: the agents then fall back to long-polling).
# shellcheck disable=SC2086
"$bin/relay/relay_server" --listen=127.0.0.1:0 --port_file="$dir/relay.port" --tls_cert="$cert" \
  --tls_key="$key" --sas_keys_file="$dir/relay.keys" ${DEVSTACK_RELAY_FLAGS:-} 2>"$logs/relay.log" &
started $! relay
wait_for "$dir/relay.port" relay
relay_url=https://localhost:$(cat "$dir/relay.port")

# Cloud, with a demo admin user.
"$bin/cloud/cloud_server" admin create-user demo --admin --data_dir="$dir/cloud" \
  >"$dir/demo.token" 2>"$logs/cloud-admin.log"
chmod 600 "$dir/demo.token"
"$bin/cloud/cloud_server" --listen=127.0.0.1:0 --port_file="$dir/cloud.port" \
  --http_listen=127.0.0.1:0 --http_port_file="$dir/cloud-http.port" --data_dir="$dir/cloud" \
  --tls_cert="$cert" --tls_key="$key" --relay_url="$relay_url" --relay_ca="$ca" \
  --relay_keys_file="$dir/relay.keys" 2>"$logs/cloud.log" &
started $! cloud
wait_for "$dir/cloud.port" cloud
wait_for "$dir/cloud-http.port" "cloud HTTP"
cloud=localhost:$(cat "$dir/cloud.port")
export TETHER_CONFIG=$dir/tetherctl.conf
tetherctl() { "$bin/tools/tetherctl/tetherctl" "$@"; }
tetherctl login --cloud "$cloud" --ca "$ca" --token-file "$dir/demo.token" >/dev/null

# The local account flows run as, for the file backend (the agents' stand-in for PAM).
write_secret "$dir/desk.password" "$(secret)"
"$bin/agent/accounts/account_file_tool" add "$dir/accounts" "$user" --password-file "$dir/desk.password" \
  >"$logs/accounts.log" 2>&1

# A gateway cluster with one member.
write_secret "$dir/recovery.key" "$(secret)"
"$bin/gateway/gateway" create-cluster --cloud "$cloud" --ca "$ca" --token-file "$dir/demo.token" \
  --cluster demo-site --recovery-key-file "$dir/recovery.key" --relay_ca "$ca" --name gateway-1 \
  --data_dir "$dir/gateway" >"$logs/gateway-enroll.log" 2>&1
"$bin/gateway/gateway" run --data_dir "$dir/gateway" --local_relay_listen 127.0.0.1:0 \
  --service_listen 127.0.0.1:0 --tls_cert "$cert" --tls_key "$key" --local_ca "$ca" \
  --relay_port_file "$dir/gateway-relay.port" --service_port_file "$dir/gateway-service.port" \
  2>"$logs/gateway.log" &
started $! gateway
wait_for "$dir/gateway-service.port" gateway

# Two agents: one straight to the relay, one behind the gateway.
"$bin/agent/agent" register --cloud "$cloud" --ca "$ca" --relay_ca "$ca" --token-file "$dir/demo.token" \
  --name desk-direct --data_dir "$dir/agent-direct" >"$logs/agent-direct-register.log" 2>&1
"$bin/agent/agent" register --cloud "$cloud" --ca "$ca" --relay_ca "$ca" --token-file "$dir/demo.token" \
  --name desk-gateway --cluster demo-site --data_dir "$dir/agent-gateway" \
  >"$logs/agent-gateway-register.log" 2>&1
"$bin/agent/agent" run --data_dir "$dir/agent-direct" --accounts "file:$dir/accounts" \
  --runner "$bin/agent/runner/flow_runner" 2>"$logs/agent-direct.log" &
started $! agent-direct
"$bin/agent/agent" run --data_dir "$dir/agent-gateway" --accounts "file:$dir/accounts" \
  --runner "$bin/agent/runner/flow_runner" --via-gateway "127.0.0.1:$(cat "$dir/gateway-service.port")" \
  --gateway_ca "$ca" 2>"$logs/agent-gateway.log" &
started $! agent-gateway
for agent in agent-direct agent-gateway; do
  for _ in $(seq 1 300); do
    grep -q '"connected' "$dir/$agent/status.json" 2>/dev/null && break
    sleep 0.1
  done
  grep -q '"connected' "$dir/$agent/status.json" 2>/dev/null ||
    { echo "devstack: $agent did not connect; see $logs/$agent.log" >&2; exit 1; }
done

# The demo flow and a connection through each path (passwords sealed by tetherctl).
cat >"$dir/demo-flow.json" <<'FLOW'
{"name": "Hello from the desktop",
 "inputs": [{"name": "Who", "type": "text", "default": "world"}],
 "outputs": [{"name": "Greeting"}, {"name": "Host"}],
 "actions": [
   {"action": "Variables.SetVariable", "variable": "Greeting", "value": "hello %Who%"},
   {"action": "System.RunApplication", "path": "/bin/hostname", "stdout_variable": "Host"},
   {"action": "Flow.Wait", "duration_ms": 200}]}
FLOW
tetherctl flows create demo --file "$dir/demo-flow.json" >/dev/null
tetherctl connections create direct --machine desk-direct --username "$user" \
  --password-file "$dir/desk.password" >/dev/null
tetherctl connections create via-gateway --cluster demo-site --username "$user" \
  --password-file "$dir/desk.password" >/dev/null

status=0
for connection in direct via-gateway; do
  echo
  echo "devstack: running the demo flow through connection \"$connection\""
  tetherctl run demo --connection "$connection" --input Who=devstack --wait || status=1
done

http=$(cat "$dir/cloud-http.port")
cat <<EOF2

devstack: up (relay $relay_url, cloud $cloud). In another terminal:
  export TETHER_CONFIG=$TETHER_CONFIG
  alias tetherctl=$bin/tools/tetherctl/tetherctl
  tetherctl machines list
  tetherctl runs list
  tetherctl run demo --connection via-gateway --input Who=you --wait
  curl --cacert $ca https://localhost:$http/metrics
Portal: https://localhost:$http/  (sign in with the API token in $dir/demo.token)
Logs: $logs   Agent status: $bin/agent/agent status --data_dir $dir/agent-direct
EOF2
if $once; then
  exit $status
fi
echo "devstack: Ctrl-C stops everything"
wait
