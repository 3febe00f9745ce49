#!/usr/bin/env bash
# devcerts writes a CA and a server certificate that openssl verifies, with a 0600 key; bad input
# exits 2 with one line on stderr.
set -euo pipefail
bin=tools/devcerts/devcerts
out="$TEST_TMPDIR/certs"
"$bin" --out_dir="$out" --dns=localhost,relay.test --ip=127.0.0.1 >/dev/null
[[ $(stat -c %a "$out/server.key") == 600 ]] || { echo "server.key is not 0600"; exit 1; }
openssl verify -CAfile "$out/ca.pem" -verify_hostname relay.test "$out/server.pem" >/dev/null
openssl verify -CAfile "$out/ca.pem" -verify_ip 127.0.0.1 "$out/server.pem" >/dev/null
if openssl verify -CAfile "$out/ca.pem" -verify_hostname other.test "$out/server.pem" >/dev/null 2>&1; then
  echo "certificate verified for a name it does not carry"; exit 1
fi
set +e
"$bin" --out_dir="$TEST_TMPDIR/bad" --ip=not-an-ip 2>"$TEST_TMPDIR/err"
status=$?
set -e
[[ $status == 2 ]] || { echo "bad --ip exited $status, want 2"; exit 1; }
[[ $(wc -l <"$TEST_TMPDIR/err") == 1 ]] || { echo "stderr is not one line"; exit 1; }
echo "devcerts ok"
