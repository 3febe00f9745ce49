#!/usr/bin/env bash
# Runs hpke_vectors_test.mjs (static/js/hpke.js against RFC 9180 A.1) with the system Node.
# --preserve-symlinks keeps module resolution inside the runfiles tree, so a module missing from the
# target's data fails here instead of being found in the source tree.
set -euo pipefail

node=/usr/bin/node
[[ -x "$node" ]] || { echo "FAIL: $node is missing (tools/install_deps.sh installs Node 20)"; exit 1; }
exec "$node" --preserve-symlinks --preserve-symlinks-main cloud/portal/hpke_vectors_test.mjs \
  cloud/portal/testdata/hpke-rfc9180-a1-base.txt
