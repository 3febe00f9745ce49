#!/usr/bin/env bash
# agent_healthy.sh DATA_DIR: the agents' healthcheck in docker-compose.yml. Healthy when the
# agent's status.json (agent/README.md) says it is connected and was written in the last 10
# seconds: a running agent rewrites it every second, so a file left by an earlier container
# does not count.
set -euo pipefail
status=$1/status.json
[[ -f "$status" ]] || { echo "no $status yet"; exit 1; }
age=$(($(date +%s) - $(stat -c %Y "$status")))
((age <= 10)) || { echo "$status is ${age}s old"; exit 1; }
grep -q '"connection": "connected' "$status" || { grep '"connection"' "$status"; exit 1; }
