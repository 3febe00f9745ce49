#!/usr/bin/env bash
# The `init` service of docker-compose.yml: makes, once, what tools/devstack/devstack.sh makes
# before it starts the services, in the state volume:
#   certs/ca.pem, certs/server.pem, certs/server.key   dev CA and a server certificate for the
#                                                       compose host names (tools/devcerts)
#   relay.keys        the SAS key the relay and the cloud share ("cloud KEY Manage")
#   desk.password     the password of the local account flows run as (this container user)
#   accounts          the agents' account file (file backend) holding it, scrypt-hashed
#   recovery.key      the gateway cluster's recovery key
#   cloud/            the cloud's data directory, with the admin user "demo"
#   demo.token        demo's API token
# Secrets are 0600 files (umask 077), never flags or environment variables. What exists is kept,
# so a second `docker compose up` reuses the stack (`docker compose down -v` starts afresh).
#
# TETHER_STATE_DIR and TETHER_BIN_DIR override /var/lib/tether and /usr/local/lib/tether.
set -euo pipefail
umask 077

dir=${TETHER_STATE_DIR:-/var/lib/tether}
bin=${TETHER_BIN_DIR:-/usr/local/lib/tether}
user=$(id -un)

secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# write_new FILE CONTENT: writes FILE (0600) through a temporary file unless it exists.
write_new() {
  [[ -e "$1" ]] && return 0
  printf '%s\n' "$2" >"$1.tmp"
  mv "$1.tmp" "$1"
  echo "init: wrote $1"
}

# Certificates: one dev CA and a server certificate that the relay, the cloud and the gateway
# member all serve; it names them as other containers reach them (the compose service names),
# and localhost and 127.0.0.1 for the healthchecks, the gateway's own use of its local relay and
# tetherctl on the Docker host through the published ports.
if [[ ! -s "$dir/certs/server.key" ]]; then
  rm -rf "$dir/certs.tmp"
  "$bin/devcerts" --out_dir="$dir/certs.tmp" --dns=localhost,relay,cloud,gateway --ip=127.0.0.1 \
    --days=365 >/dev/null
  rm -rf "$dir/certs"
  mv "$dir/certs.tmp" "$dir/certs"
  echo "init: wrote $dir/certs (dev CA, valid 365 days)"
fi

write_new "$dir/relay.keys" "cloud $(secret) Manage"
write_new "$dir/desk.password" "$(secret)"
if [[ ! -e "$dir/accounts" ]]; then
  "$bin/account_file_tool" add "$dir/accounts.tmp" "$user" --password-file "$dir/desk.password" >/dev/null
  mv "$dir/accounts.tmp" "$dir/accounts"
  echo "init: wrote $dir/accounts (account \"$user\")"
fi
write_new "$dir/recovery.key" "$(secret)"

# The demo admin user, while the cloud is not running yet (admin create-user opens its database).
if [[ ! -e "$dir/demo.token" ]]; then
  if ! "$bin/cloud_server" admin create-user demo --admin --data_dir="$dir/cloud" >"$dir/demo.token.tmp"; then
    rm -f "$dir/demo.token.tmp"
    echo "init: could not create the demo user; if it exists without $dir/demo.token, start" \
      "afresh with docker compose down -v" >&2
    exit 1
  fi
  mv "$dir/demo.token.tmp" "$dir/demo.token"
  echo "init: wrote $dir/demo.token (user \"demo\", admin)"
fi
echo "init: state in $dir is ready"
