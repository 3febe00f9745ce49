#!/usr/bin/env bash
# The web portal in real Chromium against the whole dev stack (portal_browser_test.mjs has the
# checks). Starts tools/devstack/devstack.sh in the background, waits for it to be up, adds a
# second user and a machine group with tetherctl (so sharing and the groups page have something to
# show), runs the browser script, and stops the stack.
#
#   bazel test //cloud/portal/browser_test:portal_browser_test   # screenshots: test outputs
#   bazel run //cloud/portal/browser_test:screenshots            # screenshots: docs/portal/
set -euo pipefail

mode=test
if [[ "${1:-}" == "--screenshots" ]]; then
  mode=screenshots
  [[ -n "${BUILD_WORKSPACE_DIRECTORY:-}" ]] || { echo "run it with bazel run" >&2; exit 2; }
  shots=$BUILD_WORKSPACE_DIRECTORY/docs/portal
  work=$(mktemp -d "${TMPDIR:-/tmp}/portal-screenshots.XXXXXX")
else
  shots=${TEST_UNDECLARED_OUTPUTS_DIR:-$TEST_TMPDIR/screenshots}
  work=$TEST_TMPDIR
fi
mkdir -p "$shots"

for tool in /usr/bin/node /usr/bin/chromium; do
  [[ -x "$tool" ]] || { echo "FAIL: $tool is missing (tools/install_deps.sh installs it)" >&2; exit 1; }
done
[[ -d /opt/tether/node/node_modules/playwright-core ]] ||
  { echo "FAIL: playwright-core is missing under /opt/tether/node (tools/install_deps.sh)" >&2; exit 1; }

export DEVSTACK_DIR=$work/stack
out=$work/devstack.out
tools/devstack/devstack.sh >"$out" 2>&1 &
stack=$!
cleanup() {
  kill -TERM "$stack" 2>/dev/null || true
  wait "$stack" 2>/dev/null || true
  [[ "$mode" == screenshots ]] && rm -rf "$work"
  return 0
}
trap cleanup EXIT

dump() {
  echo "== devstack output"; cat "$out"
  for log in "$DEVSTACK_DIR"/logs/*; do echo "== $log"; tail -30 "$log"; done
}

# Up when it prints its last line; the demo runs (two flows) come before it.
deadline=$((SECONDS + 240))
until grep -q '^devstack: Ctrl-C stops everything' "$out"; do
  if ! kill -0 "$stack" 2>/dev/null; then dump; echo "FAIL: the dev stack exited before it was up"; exit 1; fi
  if ((SECONDS > deadline)); then dump; echo "FAIL: the dev stack was not up within 240 s"; exit 1; fi
  sleep 0.2
done
grep -q "^Portal: https://localhost:$(cat "$DEVSTACK_DIR/cloud-http.port")/" "$out" ||
  { dump; echo "FAIL: devstack does not print the portal's URL"; exit 1; }

# A second user to share a machine with, and a machine group (its password stays here).
export TETHER_CONFIG=$DEVSTACK_DIR/tetherctl.conf
tetherctl() { tools/tetherctl/tetherctl "$@"; }
tetherctl users create alice >/dev/null
(umask 077; head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/group.password")
tetherctl groups create finance-desks --password-file "$work/group.password" >/dev/null

export PORTAL_URL=https://localhost:$(cat "$DEVSTACK_DIR/cloud-http.port")/
export PORTAL_MODE=$mode
export SCREENSHOT_DIR=$shots
export ACCOUNT_USER
ACCOUNT_USER=$(id -un)
export NODE_PATH=/opt/tether/node/node_modules
if ! /usr/bin/node cloud/portal/browser_test/portal_browser_test.mjs; then
  dump
  echo "FAIL"
  exit 1
fi
echo "PASS (screenshots in $shots)"
