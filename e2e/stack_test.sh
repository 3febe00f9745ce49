#!/usr/bin/env bash
# End to end over the real binaries (issue 7, scenarios 1 and 4 in part): the dev stack brings up
# relay, cloud, a gateway member and two agents over TLS on loopback; tetherctl registers nothing
# by hand here but seals both connections; a flow runs through the direct agent and through the
# gateway. Then: both runs succeeded with the right outputs, and neither the cloud's data directory
# (RocksDB WAL, SSTs, manifest) nor any service log holds the account password in plaintext.
set -euo pipefail

export DEVSTACK_DIR=$TEST_TMPDIR/stack
out=$TEST_TMPDIR/devstack.out
if ! tools/devstack/devstack.sh --once >"$out" 2>&1; then
  cat "$out"
  for log in "$DEVSTACK_DIR"/logs/*; do echo "== $log"; tail -20 "$log"; done
  echo "FAIL: the dev stack's demo runs did not both succeed"
  exit 1
fi

runs=$(grep -c 'succeeded in' "$out" || true)
[[ "$runs" == 2 ]] || { cat "$out"; echo "FAIL: expected 2 succeeded runs, saw $runs"; exit 1; }
greetings=$(grep -c 'Greeting = hello devstack' "$out" || true)
[[ "$greetings" -ge 2 ]] || { cat "$out"; echo "FAIL: the flow's output is missing"; exit 1; }
grep -q 'running on hc/cluster-' "$out" || { echo "FAIL: no run went through the gateway cluster"; exit 1; }

password=$(cat "$DEVSTACK_DIR/desk.password")
[[ ${#password} -ge 32 ]] || { echo "FAIL: no password to look for"; exit 1; }
# The scan must be able to find things: the connections' account name is stored in the clear.
grep -raqF "$(id -un)" "$DEVSTACK_DIR/cloud" || { echo "FAIL: the scan of the cloud's data finds nothing"; exit 1; }
if grep -raqF "$password" "$DEVSTACK_DIR/cloud"; then
  echo "FAIL: the plaintext password is in the cloud's data directory"
  exit 1
fi
if grep -raqF "$password" "$DEVSTACK_DIR/logs"; then
  echo "FAIL: the plaintext password is in a service log"
  exit 1
fi
echo "PASS"
