#!/usr/bin/env bash
# //tools/docker:compose_test: docker-compose.yml is valid for docker-compose (no engine needed),
# compose_check.py finds the stack's properties in it, the Dockerfile and .dockerignore, and the
# container scripts parse. Then each property is broken once, in a copy, and the check must fail
# saying why: a check that cannot fail checks nothing.
set -euo pipefail

export HOME=$TEST_TMPDIR  # docker-compose looks for ~/.docker; keep it out of the real one
command -v docker-compose >/dev/null || { echo "docker-compose is missing (tools/install_deps.sh)"; exit 1; }
# Debian's python3: it has PyYAML, a dependency of Debian's docker-compose.
python=/usr/bin/python3
src=$PWD  # the runfiles tree

for script in tools/docker/*.sh; do
  bash -n "$script" || { echo "$script does not parse"; exit 1; }
done

# A copy of the files the checks read, laid out as in the repository.
copy_to() {
  mkdir -p "$1/tools/docker"
  cp -L "$src/docker-compose.yml" "$src/Dockerfile" "$src/.dockerignore" "$1/"
  cp -L "$src"/tools/docker/*.sh "$1/tools/docker/"
}

# check DIR: prints what is wrong and fails, or succeeds. The checks read docker-compose's
# normalized config (anchors merged, one syntax for ports and lists); printing it validates too.
check() {
  (cd "$1" && docker-compose -f docker-compose.yml config) >"$1/config.yml" 2>&1 ||
    { cat "$1/config.yml"; return 1; }
  "$python" "$src/tools/docker/compose_check.py" "$1/config.yml" "$1/Dockerfile" "$1/.dockerignore" \
    "$1/tools/docker"
}

copy_to "$TEST_TMPDIR/ok"
docker-compose -f docker-compose.yml config -q || { echo "docker-compose.yml is invalid (above)"; exit 1; }
check "$TEST_TMPDIR/ok" || { echo "the repository's files fail the checks (above)"; exit 1; }

failures=0
# broken NAME FILE EXPECTED SED_ARGS...: FILE edited by sed in a fresh copy must fail the checks
# with EXPECTED in the output.
broken() {
  local name=$1 file=$2 expected=$3 dir=$TEST_TMPDIR/broken-$1
  shift 3
  copy_to "$dir"
  sed -i "$@" "$dir/$file"
  if cmp -s "$src/$file" "$dir/$file"; then
    echo "FAIL $name: the edit did not change $file (update the test)"; failures=$((failures + 1)); return
  fi
  local output status=0
  output=$(check "$dir" 2>&1) || status=$?
  if ((status == 0)); then
    echo "FAIL $name: the checks passed"; failures=$((failures + 1))
  elif [[ $output != *"$expected"* ]]; then
    echo "FAIL $name: want \"$expected\" in:"; echo "$output"; failures=$((failures + 1))
  fi
}

broken component-missing docker-compose.yml "no service named agent-gateway" \
  -e 's/^  agent-gateway:$/  agent-gw:/' -e 's/^      agent-gateway:$/      agent-gw:/'
broken component-wrong-binary docker-compose.yml "service relay runs cloud_server" \
  -e 's|/usr/local/lib/tether/relay_server|/usr/local/lib/tether/cloud_server|'
broken agent-not-via-gateway docker-compose.yml "service agent-gateway: --via-gateway missing" \
  -e '/--via-gateway=gateway:9352/d'
broken agent-publishes docker-compose.yml "service agent-direct publishes ports" \
  -e '/^  agent-direct:$/a\    ports: ["9999:9999"]'
broken gateway-publishes docker-compose.yml "service gateway publishes ports" \
  -e '/^  gateway:$/a\    ports: ["9351:9351"]'
broken secret-env-name docker-compose.yml "environment RELAY_SAS_KEY looks like a secret" \
  -e '/^  relay:$/a\    environment: {RELAY_SAS_KEY: hunter2}'
broken secret-env-value docker-compose.yml "environment GREETING has a secret-looking value" \
  -e '/^  cloud:$/a\    environment: {GREETING: tt_h4cXhPSsAf_L5ameHQVmRB9MPo7AApG}'
broken secret-flag-value docker-compose.yml "secret-looking value in '--name=" \
  -e 's/--name=desk-direct/--name=8f3a9c0d4e5b6a7f8091a2b3c4d5e6f7/'
broken secret-file-elsewhere docker-compose.yml "--sas_keys_file is not a file in /var/lib/tether" \
  -e 's|--sas_keys_file=/var/lib/tether/relay.keys|--sas_keys_file=/run/relay.keys|'
broken insecure docker-compose.yml "service relay passes --insecure" \
  -e 's|^      - --listen=0.0.0.0:9350$|&\n      - --insecure|'
broken loopback-listen docker-compose.yml "service cloud: --listen=127.0.0.1:8443" \
  -e 's|--listen=0.0.0.0:8443|--listen=127.0.0.1:8443|'
broken run-before-register docker-compose.yml "service agent-direct runs agent run on /var/lib/tether/agent-direct without waiting" \
  -e '0,/--data_dir=\/var\/lib\/tether\/agent-direct$/s//--data_dir=\/var\/lib\/tether\/desk/'
broken invalid-compose docker-compose.yml "service_whenever" \
  -e '0,/condition: service_healthy/s//condition: service_whenever/'
broken binary-not-built Dockerfile "runs flow_runner, which the Dockerfile's bazel build does not build" \
  -e 's|//agent/runner:flow_runner ||'
broken gateway-not-built Dockerfile "runs gateway, which the Dockerfile's bazel build does not build" \
  -e 's|//gateway:gateway ||'
broken script-not-copied Dockerfile "agent_healthy.sh is run but the Dockerfile does not copy it" \
  -e 's| tools/docker/agent_healthy.sh||'
# shellcheck disable=SC2016  # the appended line is shell text for init.sh, not expanded here
broken script-binary-not-built tools/docker/init.sh "tools/docker/init.sh runs crypto_cli" \
  -e '$a"$bin/crypto_cli" --help'
broken dockerignore-git .dockerignore ".dockerignore: .git is not excluded" -e '/^\.git$/d'

((failures == 0)) || { echo "$failures broken copies were not caught"; exit 1; }
echo "compose_test ok"
