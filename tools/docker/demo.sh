#!/usr/bin/env bash
# The `demo` service of docker-compose.yml: what tools/devstack/devstack.sh does once the
# services are up. Logs tetherctl in as demo (its config, holding the token, is
# ~/.config/tether/tetherctl.conf in the state volume, 0600), creates the demo flow and a
# connection through each agent (the password sealed here by tetherctl) unless they exist, and
# runs the flow through each. Exit 0 when both runs succeeded.
#
# TETHER_STATE_DIR, TETHER_BIN_DIR and TETHER_CLOUD override /var/lib/tether,
# /usr/local/lib/tether and cloud:8443.
set -euo pipefail
umask 077

dir=${TETHER_STATE_DIR:-/var/lib/tether}
bin=${TETHER_BIN_DIR:-/usr/local/lib/tether}
cloud=${TETHER_CLOUD:-cloud:8443}
user=$(id -un)
tetherctl() { "$bin/tetherctl" "$@"; }

tetherctl login --cloud "$cloud" --ca "$dir/certs/ca.pem" --token-file "$dir/demo.token" >/dev/null

# missing KIND NAME: true when `tetherctl KIND show NAME` says not found (exit 2); stops the
# script on any other failure.
missing() {
  local rc=0 err
  err=$(tetherctl "$1" show "$2" 2>&1 >/dev/null) || rc=$?
  ((rc == 0)) && return 1
  ((rc == 2)) && return 0
  echo "$err" >&2
  exit "$rc"
}

cat >"$dir/demo-flow.json" <<'FLOW'
{"name": "Hello from the desktop",
 "inputs": [{"name": "Who", "type": "text", "default": "world"}],
 "outputs": [{"name": "Greeting"}, {"name": "Host"}],
 "actions": [
   {"action": "Variables.SetVariable", "variable": "Greeting", "value": "hello %Who%"},
   {"action": "System.RunApplication", "path": "/bin/hostname", "stdout_variable": "Host"},
   {"action": "Flow.Wait", "duration_ms": 200}]}
FLOW
if missing flows demo; then
  tetherctl flows create demo --file "$dir/demo-flow.json" >/dev/null
fi
if missing connections direct; then
  tetherctl connections create direct --machine desk-direct --username "$user" \
    --password-file "$dir/desk.password" >/dev/null
fi
if missing connections via-gateway; then
  tetherctl connections create via-gateway --cluster demo-site --username "$user" \
    --password-file "$dir/desk.password" >/dev/null
fi

status=0
for connection in direct via-gateway; do
  echo "demo: running the demo flow through connection \"$connection\""
  tetherctl run demo --connection "$connection" --input Who=docker --wait || status=1
done
exit $status
