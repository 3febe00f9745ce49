#!/usr/bin/env bash
# Entry point of every container of the Tether image (Dockerfile, docker-compose.yml): makes
# everything the command creates private (umask 077: data directories 0700, secret files 0600),
# checks that the state directory belongs to this user and is closed to others (the services
# refuse secret files that are not, with a less direct message), then runs the command.
set -euo pipefail
umask 077

state=${TETHER_STATE_DIR:-/var/lib/tether}
if [[ ! -d "$state" || ! -O "$state" ]]; then
  echo "entrypoint: $state must be a directory owned by $(id -un) (uid $(id -u)); mount the" \
    "compose file's named volume there, or chown a bind-mounted one" >&2
  exit 2
fi
if [[ $(stat -c %a "$state") != 700 ]]; then
  echo "entrypoint: $state is mode $(stat -c %a "$state"), want 700: chmod 700 it" >&2
  exit 2
fi
(($# > 0)) || { echo "entrypoint: no command (see docker-compose.yml)" >&2; exit 2; }
exec "$@"
