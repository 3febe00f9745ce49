#!/usr/bin/env bash
# The main job: builds Tether and starts the local dev stack with a demo run
# (`bazel run //tools/devstack`). Installs what is missing first. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install_deps.sh
bazel build //...

if bazel query //tools/devstack:devstack >/dev/null 2>&1; then
  exec bazel run //tools/devstack -- "$@"
fi

cat <<'MSG'
Tether builds, but the dev stack does not exist yet, so there is no demo run to show.
What is built so far (see README.md, "Status"):
  //common/crypto     HPKE, sealed credential envelopes, scrypt key wrap, cluster keys, Ed25519, SAS
  //common/proto      wire formats and gRPC services of all four services
  //common/store      RocksDB storage
  //tools/crypto_cli  the crypto primitives on the command line
  //relay:relay_server the relay (docs/RELAY.md), with its client library in //common/net
  //cloud:cloud_server the cloud API, run queue and dispatcher (docs/CLOUD.md)
  //tools/tetherctl   the user CLI (docs/TETHERCTL.md)
  //agent:agent       the desktop agent and its flow runner (agent/README.md)
  //gateway:gateway   on-premises gateway clusters (gateway/README.md)
Missing before a demo can run: //tools/devstack (issue 7).

Meanwhile, the credential crypto at work (an X25519 key pair derived from a seed, then an HPKE
seal and open with Tether's suite, X25519 / HKDF-SHA256 / AES-256-GCM):
MSG
cli=bazel-bin/tools/crypto_cli/crypto_cli
read -r sk pk < <("$cli" hpke-derive-keypair --kem 32 \
  --ikm 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f)
sk=${sk#sk=}
pk=${pk#pk=}
message=$(printf 'hello desktop' | od -An -tx1 | tr -d ' \n')
read -r enc ct < <("$cli" hpke-seal --kem 32 --kdf 1 --aead 2 --pk "$pk" \
  --info 7465746865722f64656d6f --aad "" --pt "$message")
enc=${enc#enc=}
ct=${ct#ct=}
opened=$("$cli" hpke-open --kem 32 --kdf 1 --aead 2 --sk "$sk" --enc "$enc" \
  --info 7465746865722f64656d6f --aad "" --ct "$ct")
echo "  recipient public key  $pk"
echo "  sealed                enc=${enc:0:16}... ct=${ct:0:16}..."
echo "  opened                $(python3 -c "import sys; print(bytes.fromhex(sys.argv[1]).decode())" "$opened")"
