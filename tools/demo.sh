#!/usr/bin/env bash
# The main job: builds Tether and starts the local dev stack with a demo run
# (`bazel run //tools/devstack`: relay, cloud, a gateway member and two agents over TLS on
# loopback; one demo flow run through each agent; then it prints where to look and waits for
# Ctrl-C, which stops everything). Installs what is missing first. Safe to run again.
#   tools/demo.sh           # stays up until Ctrl-C
#   tools/demo.sh --once    # stops after the demo runs
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install_deps.sh
bazel build //...
exec bazel run //tools/devstack -- "$@"
