// Seals credentials the way the portal does (static/js/envelope.js) and prints the SealedEnvelope's
// proto3 JSON on one line. For envelope_interop_test, which opens the result with the C++ code.
//
//   node seal_cli.mjs <recipient public key, base64> <connection id> <username> < password
//
// The password is every byte of stdin, taken as is (no newline stripped): it never appears in argv,
// where other users of the machine could read it.
import {base64Decode, sealCredentials} from '../static/js/envelope.js';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const all = Buffer.concat(chunks); // a Buffer is a Uint8Array
  for (const chunk of chunks) chunk.fill(0);
  return all;
}

async function main(args) {
  if (args.length !== 3) throw new Error('usage: seal_cli.mjs <public key base64> <connection id> <username> < password');
  const [publicKey, connectionId, username] = args;
  const password = await readStdin();
  try {
    const envelope = await sealCredentials(
        {recipientPublicKey: base64Decode(publicKey), connectionId, username, password});
    process.stdout.write(`${JSON.stringify(envelope)}\n`);
  } finally {
    password.fill(0);
  }
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`seal_cli: ${e.message}\n`);
  process.exitCode = 1;
});
