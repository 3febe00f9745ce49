#!/usr/bin/env bash
# enroll_once.sh IDENTITY_FILE COMMAND...: the one-shot enrolment services of docker-compose.yml
# (`agent register`, `gateway create-cluster`). Runs COMMAND unless IDENTITY_FILE, which the
# command writes last when it succeeds (agent.conf, gateway.conf), already exists: a second
# `docker compose up` keeps the machine and member it enrolled the first time instead of failing
# on them (`agent register` refuses a registered data directory).
set -euo pipefail
(($# >= 2)) || { echo "usage: enroll_once.sh IDENTITY_FILE COMMAND..." >&2; exit 2; }
identity=$1
shift
if [[ -e "$identity" ]]; then
  echo "enroll_once: $identity exists: already enrolled"
  exit 0
fi
exec "$@"
