#!/usr/bin/env bash
# End to end with WebSocket upgrades refused by the relay (as a proxy that strips them would):
# the direct agent falls back to HTTP long-polling and the demo run still succeeds (issue 7,
# scenario 2).
set -euo pipefail

export DEVSTACK_DIR=$TEST_TMPDIR/stack
export DEVSTACK_RELAY_FLAGS=--refuse_websocket_upgrade
out=$TEST_TMPDIR/devstack.out
if ! tools/devstack/devstack.sh --once >"$out" 2>&1; then
  cat "$out"
  for log in "$DEVSTACK_DIR"/logs/*; do echo "== $log"; tail -20 "$log"; done
  echo "FAIL: the demo runs did not succeed over long-polling"
  exit 1
fi
grep -q 'run.*succeeded in' "$out" || { cat "$out"; echo "FAIL: no run succeeded"; exit 1; }
# The direct agent really was on long-poll (its relay client logs the transport it connected with),
# and never on WebSocket.
log=$DEVSTACK_DIR/logs/agent-direct.log
grep -q '"transport":"longpoll"' "$log" || { cat "$log"; echo "FAIL: the direct agent did not long-poll"; exit 1; }
if grep -q '"transport":"websocket"' "$log"; then cat "$log"; echo "FAIL: a WebSocket got through"; exit 1; fi
echo "PASS"
