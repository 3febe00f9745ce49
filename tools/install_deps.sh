#!/usr/bin/env bash
# Installs everything Tether needs to build and test on Debian 12: Bazel 4.2.3 (Debian's
# bazel-bootstrap) and the system libraries the WORKSPACE points at. Safe to run again: when every
# package is present it does nothing and touches no network.
#
#   tools/install_deps.sh                # build and test (the README's commands)
#   tools/install_deps.sh --build-only   # only what `bazel build` needs (the Dockerfile's stage)
set -euo pipefail

build_only=false
[[ "${1:-}" == "--build-only" ]] && build_only=true

PACKAGES=(
  bazel-bootstrap bazel-rules-java bazel-platforms
  g++ pkg-config
  libssl-dev openssl
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev
  libboost1.81-dev
  libabsl-dev
  libgtest-dev libgmock-dev
  libpam0g-dev
  python3 python3-websockets
)
if ! $build_only; then
  # Tests only: the compose file check and the portal's browser tests.
  PACKAGES+=(docker-compose chromium)
fi

# The portal's browser tests drive Debian's Chromium with playwright-core from the npm registry,
# installed (pinned) under this prefix; tests find it there (cloud/portal/README.md).
NODE_PREFIX=/opt/tether/node
PLAYWRIGHT_VERSION=1.64.1

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

install_node_modules() {
  if $build_only; then return 0; fi
  if [[ -f "$NODE_PREFIX/node_modules/playwright-core/package.json" ]] &&
     grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$NODE_PREFIX/node_modules/playwright-core/package.json"; then
    return 0
  fi
  echo "install_deps: installing playwright-core@$PLAYWRIGHT_VERSION into $NODE_PREFIX" >&2
  if ! command -v npm >/dev/null; then  # machines of this kind ship Node.js 20 with npm
    $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  $SUDO mkdir -p "$NODE_PREFIX"
  $SUDO npm install --silent --no-audit --no-fund --prefix "$NODE_PREFIX" \
    "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
}

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

if ((${#missing[@]} == 0)); then
  install_node_modules
  exit 0
fi

echo "install_deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_node_modules
