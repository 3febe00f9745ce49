// static/js/hpke.js against RFC 9180 Appendix A.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
// AES-128-GCM, mode_base): every value of the appendix, read from the vector file given as the
// first argument (testdata/hpke-rfc9180-a1-base.txt). Also: tampering fails, ChaCha20 is refused.
// Run by //cloud/portal:hpke_vectors_test (hpke_vectors_test.sh) with Node 20's WebCrypto.
import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {test} from 'node:test';

import {
  AEAD_AES_128_GCM,
  AEAD_AES_256_GCM,
  AEAD_CHACHA20_POLY1305,
  KDF_HKDF_SHA256,
  KEM_X25519_HKDF_SHA256,
  HpkeError,
  decap,
  deriveKeyPair,
  encap,
  generateKeyPair,
  keyScheduleBase,
  open,
  seal,
  setupBaseReceiver,
  setupBaseSender,
  x25519PublicKey,
} from './static/js/hpke.js';

// --- the vector file: "name: hex" fields, values may wrap onto following hex-only lines, records
// separated by blank lines, fences and headings (the format of common/crypto/test_vectors.h) ------

function readVectorFile(path) {
  const records = [];
  let current = {};
  let lastField = null;
  const finish = () => {
    if (Object.keys(current).length > 0) records.push(current);
    current = {};
    lastField = null;
  };
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('~~~')) {
      finish();
      continue;
    }
    if (lastField !== null && /^[0-9a-fA-F]+$/.test(line)) {
      current[lastField] += line;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon < 0) throw new Error(`${path}: unexpected line: ${line}`);
    lastField = line.slice(0, colon).trim();
    current[lastField] = line.slice(colon + 1).trim();
  }
  finish();
  return {
    setup: records.find((r) => 'ikmE' in r),
    encryptions: records.filter((r) => 'sequence number' in r),
    exports: records.filter((r) => 'exporter_context' in r),
  };
}

const vectorPath = process.argv[2];
if (!vectorPath) throw new Error('usage: hpke_vectors_test.mjs <vector file>');
const {setup, encryptions, exports} = readVectorFile(vectorPath);

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const unhex = (text) => new Uint8Array(Buffer.from(text, 'hex'));
const v = (name) => {
  assert.ok(name in setup, `vector file has no ${name}`);
  return unhex(setup[name]);
};

// A file that silently lost its records would make the loops below vacuous.
test('vector file holds the whole appendix', () => {
  assert.ok(setup, 'no setup record');
  assert.equal(encryptions.length, 6);
  assert.equal(exports.length, 3);
  assert.equal(Number(setup.mode), 0);
  assert.equal(Number(setup.kem_id), KEM_X25519_HKDF_SHA256);
  assert.equal(Number(setup.kdf_id), KDF_HKDF_SHA256);
  assert.equal(Number(setup.aead_id), AEAD_AES_128_GCM);
});

test('DeriveKeyPair reproduces skEm, pkEm, skRm and pkRm', async () => {
  const ephemeral = await deriveKeyPair(v('ikmE'));
  assert.equal(hex(ephemeral.privateKey), setup.skEm);
  assert.equal(hex(ephemeral.publicKey), setup.pkEm);
  const recipient = await deriveKeyPair(v('ikmR'));
  assert.equal(hex(recipient.privateKey), setup.skRm);
  assert.equal(hex(recipient.publicKey), setup.pkRm);
  assert.equal(hex(await x25519PublicKey(v('skRm'))), setup.pkRm);
});

test('Encap with skEm reproduces enc and shared_secret; Decap with skRm agrees', async () => {
  const {sharedSecret, enc} = await encap(v('pkRm'), {ephemeralPrivateKey: v('skEm')});
  assert.equal(hex(enc), setup.enc);
  assert.equal(hex(enc), setup.pkEm);
  assert.equal(hex(sharedSecret), setup.shared_secret);
  assert.equal(hex(await decap(v('enc'), v('skRm'))), setup.shared_secret);
});

test('key schedule reproduces key_schedule_context, secret, key, base_nonce, exporter_secret', async () => {
  const schedule = await keyScheduleBase(AEAD_AES_128_GCM, v('shared_secret'), v('info'));
  assert.equal(hex(schedule.keyScheduleContext), setup.key_schedule_context);
  assert.equal(hex(schedule.secret), setup.secret);
  assert.equal(hex(schedule.key), setup.key);
  assert.equal(hex(schedule.baseNonce), setup.base_nonce);
  assert.equal(hex(schedule.exporterSecret), setup.exporter_secret);
});

async function vectorSender() {
  return setupBaseSender(v('pkRm'), v('info'),
      {aeadId: AEAD_AES_128_GCM, ephemeralPrivateKey: v('skEm')});
}

test('sender context reproduces every encryption (sequence numbers 0, 1, 2, 4, 255, 256)', async () => {
  const {enc, context} = await vectorSender();
  assert.equal(hex(enc), setup.enc);
  assert.equal(hex(context.keySchedule.key), setup.key);
  for (const e of encryptions) {
    context.sequence = Number(e['sequence number']);
    const ct = await context.seal(unhex(e.aad), unhex(e.pt));
    assert.equal(hex(ct), e.ct, `sequence number ${e['sequence number']}`);
    assert.equal(context.sequence, BigInt(e['sequence number']) + 1n);
  }
});

test('sender context advances through sequence numbers 0, 1, 2 on its own', async () => {
  const {context} = await vectorSender();
  for (const e of encryptions.slice(0, 3)) {
    assert.equal(hex(await context.seal(unhex(e.aad), unhex(e.pt))), e.ct);
  }
});

test('receiver context opens every encryption', async () => {
  const context = await setupBaseReceiver(v('enc'), v('skRm'), v('info'), {aeadId: AEAD_AES_128_GCM});
  for (const e of encryptions) {
    context.sequence = Number(e['sequence number']);
    assert.equal(hex(await context.open(unhex(e.aad), unhex(e.ct))), e.pt,
        `sequence number ${e['sequence number']}`);
  }
});

test('every exported value is reproduced by sender and receiver', async () => {
  const {context: sender} = await vectorSender();
  const receiver = await setupBaseReceiver(v('enc'), v('skRm'), v('info'), {aeadId: AEAD_AES_128_GCM});
  for (const x of exports) {
    const length = Number(x.L);
    assert.equal(hex(await sender.export(unhex(x.exporter_context), length)), x.exported_value,
        `exporter_context "${x.exporter_context}"`);
    assert.equal(hex(await receiver.export(unhex(x.exporter_context), length)), x.exported_value);
  }
});

const first = encryptions[0];

async function expectUnauthenticated(promise, what) {
  await assert.rejects(promise, (e) => e instanceof HpkeError && e.code === 'unauthenticated', what);
}

test('any flipped ciphertext byte, or a changed aad, info or enc, is unauthenticated', async () => {
  const ct = unhex(first.ct);
  const open0 = (ciphertext, aad = unhex(first.aad), info = v('info'), enc = v('enc')) =>
    open(v('skRm'), enc, info, aad, ciphertext, {aeadId: AEAD_AES_128_GCM});
  assert.equal(hex(await open0(ct)), first.pt); // the untampered one opens
  for (let i = 0; i < ct.length; ++i) {
    const tampered = ct.slice();
    tampered[i] ^= 0x01;
    await expectUnauthenticated(open0(tampered), `ciphertext byte ${i}`);
  }
  await expectUnauthenticated(open0(ct.subarray(0, ct.length - 1)), 'truncated ciphertext');
  await expectUnauthenticated(open0(ct, unhex(encryptions[1].aad)), 'other aad');
  await expectUnauthenticated(open0(ct, new Uint8Array(0)), 'empty aad');
  await expectUnauthenticated(open0(ct, unhex(first.aad), new Uint8Array(0)), 'other info');
  const enc = v('enc');
  enc[5] ^= 0x80;
  await expectUnauthenticated(open0(ct, unhex(first.aad), v('info'), enc), 'other enc');
});

test('a failed open does not advance the sequence number', async () => {
  const context = await setupBaseReceiver(v('enc'), v('skRm'), v('info'), {aeadId: AEAD_AES_128_GCM});
  await expectUnauthenticated(context.open(unhex(encryptions[1].aad), unhex(first.ct)), 'wrong aad');
  assert.equal(context.sequence, 0n);
  assert.equal(hex(await context.open(unhex(first.aad), unhex(first.ct))), first.pt);
  assert.equal(context.sequence, 1n);
});

test('ChaCha20-Poly1305 (0x0003) is refused as unsupported, with the reason', async () => {
  const isChaChaRefusal = (e) => e instanceof HpkeError && e.code === 'unsupported' &&
      /ChaCha20/.test(e.message) && /WebCrypto/.test(e.message);
  const options = {aeadId: AEAD_CHACHA20_POLY1305};
  await assert.rejects(seal(v('pkRm'), v('info'), new Uint8Array(0), new Uint8Array(1), options),
      isChaChaRefusal);
  await assert.rejects(setupBaseSender(v('pkRm'), v('info'), options), isChaChaRefusal);
  await assert.rejects(setupBaseReceiver(v('enc'), v('skRm'), v('info'), options), isChaChaRefusal);
  await assert.rejects(keyScheduleBase(AEAD_CHACHA20_POLY1305, v('shared_secret'), v('info')),
      isChaChaRefusal);
  await assert.rejects(seal(v('pkRm'), v('info'), new Uint8Array(0), new Uint8Array(1), {aeadId: 0x0004}),
      (e) => e instanceof HpkeError && e.code === 'unsupported');
});

test('AES-256-GCM (Tether\'s suite, the default) round-trips with a fresh key pair', async () => {
  const recipient = await generateKeyPair();
  assert.equal(hex(await x25519PublicKey(recipient.privateKey)), hex(recipient.publicKey));
  const info = new TextEncoder().encode('tether/test');
  const aad = Uint8Array.of(1, 2, 3);
  const pt = new TextEncoder().encode('sealed in the browser');
  const {enc, ciphertext} = await seal(recipient.publicKey, info, aad, pt);
  assert.equal(ciphertext.length, pt.length + 16);
  assert.equal(hex(await open(recipient.privateKey, enc, info, aad, ciphertext)), hex(pt));
  assert.equal(hex(await open(recipient.privateKey, enc, info, aad, ciphertext, {aeadId: AEAD_AES_256_GCM})),
      hex(pt));
  // Two seals of one message differ: the ephemeral key is fresh each time.
  const again = await seal(recipient.publicKey, info, aad, pt);
  assert.notEqual(hex(again.enc), hex(enc));
  // Opening as AES-128-GCM uses another key schedule and fails.
  await expectUnauthenticated(open(recipient.privateKey, enc, info, aad, ciphertext,
      {aeadId: AEAD_AES_128_GCM}), 'wrong suite');
});

test('malformed keys and small-order points are invalid arguments', async () => {
  const invalid = (e) => e instanceof HpkeError && e.code === 'invalid-argument';
  await assert.rejects(seal(new Uint8Array(31), new Uint8Array(0), new Uint8Array(0), new Uint8Array(0)), invalid);
  await assert.rejects(seal('not bytes', new Uint8Array(0), new Uint8Array(0), new Uint8Array(0)), invalid);
  // u = 0 is a small-order point: X25519 with it is the all-zero value (RFC 9180 §7.1.4).
  await assert.rejects(seal(new Uint8Array(32), new Uint8Array(0), new Uint8Array(0), new Uint8Array(0)), invalid);
  await assert.rejects(decap(new Uint8Array(32), v('skRm')), invalid);
});

test('a disposed context refuses further use', async () => {
  const {context} = await vectorSender();
  context.dispose();
  await assert.rejects(context.seal(unhex(first.aad), unhex(first.pt)),
      (e) => e instanceof HpkeError && /dispose/.test(e.message));
  await assert.rejects(context.export(new Uint8Array(0), 32), (e) => e instanceof HpkeError);
});

// Runs `body` with globalThis.crypto replaced, as on an old browser or an insecure page.
async function withCrypto(fake, body) {
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
  Object.defineProperty(globalThis, 'crypto', {value: fake, configurable: true, writable: true});
  try {
    await body();
  } finally {
    Object.defineProperty(globalThis, 'crypto', saved);
  }
}

test('a WebCrypto without X25519 is unsupported, and no WebCrypto at all is unavailable', async () => {
  const real = globalThis.crypto.subtle;
  const noX25519 = new Proxy(real, {
    get(target, name) {
      if (name === 'generateKey' || name === 'importKey') {
        return async (...args) => {
          const algorithm = name === 'generateKey' ? args[0] : args[2];
          if ((algorithm.name ?? algorithm) === 'X25519') {
            throw new DOMException('Unrecognized name.', 'NotSupportedError');
          }
          return target[name](...args);
        };
      }
      const value = target[name];
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const args = [v('pkRm'), v('info'), new Uint8Array(0), new Uint8Array(1)];
  await withCrypto({subtle: noX25519}, async () => {
    await assert.rejects(seal(...args), (e) => e instanceof HpkeError && e.code === 'unsupported' &&
        /no X25519/.test(e.message));
    await assert.rejects(open(v('skRm'), v('enc'), v('info'), unhex(first.aad), unhex(first.ct),
        {aeadId: AEAD_AES_128_GCM}), (e) => e instanceof HpkeError && e.code === 'unsupported');
    await assert.rejects(generateKeyPair(), (e) => e instanceof HpkeError && e.code === 'unsupported');
  });
  await withCrypto({}, async () => {
    await assert.rejects(seal(...args), (e) => e instanceof HpkeError && e.code === 'unavailable');
  });
  assert.ok((await seal(...args)).enc.length === 32, 'the real WebCrypto is back');
});
