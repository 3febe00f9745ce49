// HPKE (RFC 9180) mode_base for the browser, on WebCrypto alone (globalThis.crypto.subtle): no
// build step, no third-party code. The same suites as //common/crypto/hpke.h, minus the one
// WebCrypto lacks:
//
//   KEM  0x0020 DHKEM(X25519, HKDF-SHA256)
//   KDF  0x0001 HKDF-SHA256
//   AEAD 0x0001 AES-128-GCM, 0x0002 AES-256-GCM (Tether's suite, the default here).
//        0x0003 ChaCha20-Poly1305 is refused: WebCrypto has no ChaCha20.
//
// Single-shot:
//   const {enc, ciphertext} = await seal(recipientPublicKey, info, aad, plaintext);
//   const plaintext = await open(recipientPrivateKey, enc, info, aad, ciphertext);
// Several messages: setupBaseSender / setupBaseReceiver return an HpkeContext whose seal/open
// advance a sequence number (nonce = base_nonce XOR seq) and whose export derives secrets (§5.3).
//
// Every byte string in and out is a Uint8Array (an ArrayBuffer is accepted as input); keys are raw
// 32-byte X25519 keys. Every function is async and rejects with an HpkeError whose `code` says what
// to do: 'invalid-argument' (fix the input), 'unsupported' (suite not available here),
// 'unauthenticated' (ciphertext, aad, info or key do not match), 'exhausted' (sequence number
// used up), 'unavailable' (no WebCrypto: the page is not a secure context).
//
// Secrets: intermediate values held in Uint8Arrays (DH output, PRKs, shared secret) are wiped with
// fill(0) once used; the sender's own ephemeral private key is generated non-extractable and never
// leaves WebCrypto. Copies that WebCrypto and the JS engine make internally cannot be wiped.

export const KEM_X25519_HKDF_SHA256 = 0x0020;
export const KDF_HKDF_SHA256 = 0x0001;
export const AEAD_AES_128_GCM = 0x0001;
export const AEAD_AES_256_GCM = 0x0002;
export const AEAD_CHACHA20_POLY1305 = 0x0003;

export const X25519_KEY_SIZE = 32;
const HASH_SIZE = 32; // Nh of HKDF-SHA256
const TAG_SIZE = 16;
const MODE_BASE = 0x00;

export class HpkeError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'HpkeError';
    this.code = code;
  }
}

// Key and nonce sizes (Nk, Nn) of the AEADs this module implements.
const AEADS = new Map([
  [AEAD_AES_128_GCM, {nk: 16, nn: 12}],
  [AEAD_AES_256_GCM, {nk: 32, nn: 12}],
]);

function aeadParams(aeadId) {
  const params = AEADS.get(aeadId);
  if (params) return params;
  if (aeadId === AEAD_CHACHA20_POLY1305) {
    throw new HpkeError('unsupported',
        'HPKE AEAD 0x0003 (ChaCha20-Poly1305) is not available: WebCrypto has no ChaCha20; ' +
        'use 0x0001 (AES-128-GCM) or 0x0002 (AES-256-GCM)');
  }
  throw new HpkeError('unsupported', `unknown HPKE AEAD id ${aeadId}`);
}

function subtle() {
  const s = globalThis.crypto && globalThis.crypto.subtle;
  if (!s) {
    throw new HpkeError('unavailable',
        'WebCrypto (crypto.subtle) is not available: the page must be served over HTTPS or from localhost');
  }
  return s;
}

// --- byte helpers -------------------------------------------------------------------------------

const encoder = new TextEncoder();

function bytes(value, name) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new HpkeError('invalid-argument', `${name} must be a Uint8Array`);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

// I2OSP(n, w): n (a Number or BigInt) as w big-endian bytes.
function i2osp(n, w) {
  const out = new Uint8Array(w);
  let v = BigInt(n);
  for (let i = w - 1; i >= 0 && v > 0n; --i) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function wipe(...arrays) {
  for (const a of arrays) if (a) a.fill(0);
}

const KEM_SUITE_ID = concat(encoder.encode('KEM'), i2osp(KEM_X25519_HKDF_SHA256, 2));

function hpkeSuiteId(aeadId) {
  return concat(encoder.encode('HPKE'), i2osp(KEM_X25519_HKDF_SHA256, 2),
      i2osp(KDF_HKDF_SHA256, 2), i2osp(aeadId, 2));
}

// --- HKDF-SHA256 on HMAC (RFC 5869), split into Extract and Expand as RFC 9180 needs ---------------

// WebCrypto refuses zero-length HMAC keys (DataError). HMAC pads its key with zeros to the block
// size, so an empty key and HashLen zero bytes give the same MAC; RFC 5869 also names HashLen zeros
// as the salt when none is given.
const EMPTY_KEY_EQUIVALENT = new Uint8Array(HASH_SIZE);

async function hmacSha256(key, data) {
  const s = subtle();
  const k = await s.importKey('raw', key.length === 0 ? EMPTY_KEY_EQUIVALENT : key,
      {name: 'HMAC', hash: 'SHA-256'}, false, ['sign']);
  return new Uint8Array(await s.sign('HMAC', k, data));
}

async function hkdfExpand(prk, info, length) {
  if (length > 255 * HASH_SIZE) {
    throw new HpkeError('invalid-argument', `HKDF-Expand length ${length} exceeds ${255 * HASH_SIZE}`);
  }
  const out = new Uint8Array(length);
  let previous = new Uint8Array(0);
  for (let i = 1, offset = 0; offset < length; ++i) {
    const input = concat(previous, info, Uint8Array.of(i));
    const block = await hmacSha256(prk, input);
    wipe(previous, input);
    out.set(block.subarray(0, Math.min(HASH_SIZE, length - offset)), offset);
    offset += HASH_SIZE;
    previous = block;
  }
  wipe(previous);
  return out;
}

const HPKE_V1 = encoder.encode('HPKE-v1');

async function labeledExtract(suiteId, salt, label, ikm) {
  const labeledIkm = concat(HPKE_V1, suiteId, encoder.encode(label), ikm);
  try {
    return await hmacSha256(salt, labeledIkm);
  } finally {
    wipe(labeledIkm);
  }
}

async function labeledExpand(suiteId, prk, label, info, length) {
  const labeledInfo = concat(i2osp(length, 2), HPKE_V1, suiteId, encoder.encode(label), info);
  return hkdfExpand(prk, labeledInfo, length);
}

// --- DHKEM(X25519, HKDF-SHA256) -------------------------------------------------------------------

// PKCS#8 PrivateKeyInfo for an X25519 key (RFC 8410) up to the 32 raw bytes: version 0,
// AlgorithmIdentifier 1.3.101.110, OCTET STRING wrapping an OCTET STRING of 32 bytes.
const X25519_PKCS8_PREFIX = Uint8Array.of(
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20);
// The X25519 base point, u = 9: DH(sk, base point) is sk's public key.
const X25519_BASE_POINT = concat(Uint8Array.of(9), new Uint8Array(31));

function checkKey(key, name) {
  key = bytes(key, name);
  if (key.length !== X25519_KEY_SIZE) {
    throw new HpkeError('invalid-argument', `${name} must be ${X25519_KEY_SIZE} bytes, got ${key.length}`);
  }
  return key;
}

// A WebCrypto failure on an X25519 operation: NotSupportedError means the browser has no X25519
// at all (it arrived in Chromium 133), anything else is the key's fault.
function x25519Failure(e, what) {
  if (e instanceof HpkeError) return e;
  if (e && e.name === 'NotSupportedError') {
    return new HpkeError('unsupported', `this browser's WebCrypto has no X25519 (${e.message})`);
  }
  return new HpkeError('invalid-argument', `${what}: ${e && e.message}`);
}

async function importPrivateKey(raw) {
  const der = concat(X25519_PKCS8_PREFIX, raw);
  try {
    return await subtle().importKey('pkcs8', der, {name: 'X25519'}, false, ['deriveBits']);
  } catch (e) {
    throw x25519Failure(e, 'X25519 private key rejected by WebCrypto');
  } finally {
    wipe(der);
  }
}

async function dh(privateKey, publicRaw) {
  const s = subtle();
  let publicKey;
  try {
    publicKey = await s.importKey('raw', publicRaw, {name: 'X25519'}, true, []);
  } catch (e) {
    throw x25519Failure(e, 'X25519 public key rejected by WebCrypto');
  }
  let shared;
  try {
    shared = new Uint8Array(await s.deriveBits({name: 'X25519', public: publicKey}, privateKey, 256));
  } catch (e) {
    // The WebCrypto spec refuses an all-zero result (a small-order public key) with OperationError.
    throw x25519Failure(e, 'X25519 failed (small-order public key?)');
  }
  // RFC 9180 §7.1.4: abort on the all-zero value, whether or not this WebCrypto checks.
  if (shared.every((b) => b === 0)) {
    throw new HpkeError('invalid-argument', 'X25519 produced the all-zero value (small-order public key)');
  }
  return shared;
}

// The raw public key of a raw X25519 private key.
export async function x25519PublicKey(privateKeyRaw) {
  const key = await importPrivateKey(checkKey(privateKeyRaw, 'X25519 private key'));
  return dh(key, X25519_BASE_POINT);
}

async function generateX25519(extractable) {
  try {
    return await subtle().generateKey({name: 'X25519'}, extractable, ['deriveBits']);
  } catch (e) {
    throw x25519Failure(e, 'X25519 key generation failed');
  }
}

// A fresh X25519 key pair with the raw private key exported (recipients and tests; a sender's
// ephemeral key pair never needs this and stays inside WebCrypto).
export async function generateKeyPair() {
  const s = subtle();
  const pair = await generateX25519(true);
  const pkcs8 = new Uint8Array(await s.exportKey('pkcs8', pair.privateKey));
  const prefixLength = X25519_PKCS8_PREFIX.length;
  if (pkcs8.length !== prefixLength + X25519_KEY_SIZE ||
      !X25519_PKCS8_PREFIX.every((b, i) => pkcs8[i] === b)) {
    wipe(pkcs8);
    throw new HpkeError('unsupported', 'this WebCrypto exports X25519 private keys in an unexpected PKCS#8 form');
  }
  const privateKey = pkcs8.slice(prefixLength);
  wipe(pkcs8);
  const publicKey = new Uint8Array(await s.exportKey('raw', pair.publicKey));
  return {privateKey, publicKey};
}

// RFC 9180 §7.1.3 DeriveKeyPair for X25519: deterministic in `ikm`.
export async function deriveKeyPair(ikm) {
  ikm = bytes(ikm, 'ikm');
  const prk = await labeledExtract(KEM_SUITE_ID, new Uint8Array(0), 'dkp_prk', ikm);
  const privateKey = await labeledExpand(KEM_SUITE_ID, prk, 'sk', new Uint8Array(0), X25519_KEY_SIZE);
  wipe(prk);
  return {privateKey, publicKey: await x25519PublicKey(privateKey)};
}

async function extractAndExpand(dhValue, kemContext) {
  const prk = await labeledExtract(KEM_SUITE_ID, new Uint8Array(0), 'eae_prk', dhValue);
  try {
    return await labeledExpand(KEM_SUITE_ID, prk, 'shared_secret', kemContext, HASH_SIZE);
  } finally {
    wipe(prk);
  }
}

// Encap (§4.1). `options.ephemeralPrivateKey` (raw 32 bytes) replaces the fresh ephemeral key:
// for reproducing test vectors only, since a reused ephemeral key breaks confidentiality.
export async function encap(recipientPublicKey, options = {}) {
  const pkR = checkKey(recipientPublicKey, 'recipient public key');
  let skE;
  let enc;
  if (options.ephemeralPrivateKey !== undefined) {
    const raw = checkKey(options.ephemeralPrivateKey, 'ephemeral private key');
    skE = await importPrivateKey(raw);
    enc = await dh(skE, X25519_BASE_POINT);
  } else {
    const pair = await generateX25519(false);
    skE = pair.privateKey;
    enc = new Uint8Array(await subtle().exportKey('raw', pair.publicKey));
  }
  const dhValue = await dh(skE, pkR);
  try {
    return {sharedSecret: await extractAndExpand(dhValue, concat(enc, pkR)), enc};
  } finally {
    wipe(dhValue);
  }
}

// Decap (§4.1) with the recipient's raw private key.
export async function decap(enc, recipientPrivateKey) {
  enc = checkKey(enc, 'enc');
  const raw = checkKey(recipientPrivateKey, 'recipient private key');
  const skR = await importPrivateKey(raw);
  const pkR = await dh(skR, X25519_BASE_POINT);
  const dhValue = await dh(skR, enc);
  try {
    return await extractAndExpand(dhValue, concat(enc, pkR));
  } finally {
    wipe(dhValue);
  }
}

// --- key schedule and context (§5.1-§5.3) ---------------------------------------------------------

// KeySchedule for mode_base: returns {keyScheduleContext, secret, key, baseNonce, exporterSecret}.
export async function keyScheduleBase(aeadId, sharedSecret, info) {
  const {nk, nn} = aeadParams(aeadId);
  sharedSecret = bytes(sharedSecret, 'shared secret');
  info = bytes(info, 'info');
  const suiteId = hpkeSuiteId(aeadId);
  const empty = new Uint8Array(0);
  const pskIdHash = await labeledExtract(suiteId, empty, 'psk_id_hash', empty);
  const infoHash = await labeledExtract(suiteId, empty, 'info_hash', info);
  const keyScheduleContext = concat(Uint8Array.of(MODE_BASE), pskIdHash, infoHash);
  const secret = await labeledExtract(suiteId, sharedSecret, 'secret', empty);
  return {
    keyScheduleContext,
    secret,
    key: await labeledExpand(suiteId, secret, 'key', keyScheduleContext, nk),
    baseNonce: await labeledExpand(suiteId, secret, 'base_nonce', keyScheduleContext, nn),
    exporterSecret: await labeledExpand(suiteId, secret, 'exp', keyScheduleContext, HASH_SIZE),
  };
}

// An encryption context (§5.2). Not for concurrent use: await each seal/open before the next, as
// each one claims the next sequence number.
export class HpkeContext {
  // Use setupBaseSender / setupBaseReceiver.
  constructor(role, aeadId, schedule, aeadKey) {
    this.role_ = role;
    this.aeadId_ = aeadId;
    this.schedule_ = schedule;
    this.aeadKey_ = aeadKey;
    this.seq_ = 0n;
    this.maxSeq_ = (1n << BigInt(8 * schedule.baseNonce.length)) - 1n;
  }

  // The key schedule's outputs, for checking against test vectors.
  get keySchedule() { return this.schedule_; }
  get sequence() { return this.seq_; }
  // Sets the next sequence number (a Number or BigInt), to reproduce vectors or resume a stream.
  set sequence(seq) {
    const v = BigInt(seq);
    if (v < 0n || v > this.maxSeq_) throw new HpkeError('invalid-argument', `sequence ${seq} out of range`);
    this.seq_ = v;
  }

  checkUsable_() {
    if (!this.aeadKey_) throw new HpkeError('invalid-argument', 'HPKE context used after dispose()');
  }

  nonce_() {
    this.checkUsable_();
    if (this.seq_ >= this.maxSeq_) throw new HpkeError('exhausted', 'HPKE sequence number exhausted');
    const nonce = i2osp(this.seq_, this.schedule_.baseNonce.length);
    for (let i = 0; i < nonce.length; ++i) nonce[i] ^= this.schedule_.baseNonce[i];
    return nonce;
  }

  // Returns ciphertext || tag and advances the sequence number. Sender only.
  async seal(aad, plaintext) {
    if (this.role_ !== 'sender') throw new HpkeError('invalid-argument', 'seal on a receiver context');
    aad = bytes(aad, 'aad');
    plaintext = bytes(plaintext, 'plaintext');
    const iv = this.nonce_();
    const ct = await subtle().encrypt(
        {name: 'AES-GCM', iv, additionalData: aad, tagLength: 8 * TAG_SIZE}, this.aeadKey_, plaintext);
    this.seq_ += 1n;
    return new Uint8Array(ct);
  }

  // Returns the plaintext; a ciphertext that does not authenticate is 'unauthenticated' and does
  // not advance the sequence number. Receiver only.
  async open(aad, ciphertext) {
    if (this.role_ !== 'receiver') throw new HpkeError('invalid-argument', 'open on a sender context');
    aad = bytes(aad, 'aad');
    ciphertext = bytes(ciphertext, 'ciphertext');
    if (ciphertext.length < TAG_SIZE) throw new HpkeError('unauthenticated', 'ciphertext is shorter than a tag');
    const iv = this.nonce_();
    let pt;
    try {
      pt = await subtle().decrypt(
          {name: 'AES-GCM', iv, additionalData: aad, tagLength: 8 * TAG_SIZE}, this.aeadKey_, ciphertext);
    } catch (e) {
      throw new HpkeError('unauthenticated', 'HPKE ciphertext does not authenticate');
    }
    this.seq_ += 1n;
    return new Uint8Array(pt);
  }

  // Secret export (§5.3): `length` bytes bound to `exporterContext`, at most 255 * 32.
  async export(exporterContext, length) {
    this.checkUsable_();
    exporterContext = bytes(exporterContext, 'exporter context');
    if (!Number.isInteger(length) || length < 0) {
      throw new HpkeError('invalid-argument', 'export length must be a non-negative integer');
    }
    return labeledExpand(hpkeSuiteId(this.aeadId_), this.schedule_.exporterSecret, 'sec',
        exporterContext, length);
  }

  // Wipes the key schedule's bytes; the context refuses every call afterwards. (The AEAD key lives
  // on as a non-extractable CryptoKey until garbage-collected; JS cannot wipe that.)
  dispose() {
    const s = this.schedule_;
    wipe(s.secret, s.key, s.exporterSecret);
    this.aeadKey_ = null;
  }
}

async function makeContext(role, aeadId, schedule) {
  const aeadKey = await subtle().importKey('raw', schedule.key, {name: 'AES-GCM'}, false,
      [role === 'sender' ? 'encrypt' : 'decrypt']);
  return new HpkeContext(role, aeadId, schedule, aeadKey);
}

// SetupBaseS (§5.1.1): {enc, context}. options: aeadId (default 0x0002), ephemeralPrivateKey (tests
// only, see encap).
export async function setupBaseSender(recipientPublicKey, info, options = {}) {
  const aeadId = options.aeadId ?? AEAD_AES_256_GCM;
  aeadParams(aeadId);
  const {sharedSecret, enc} = await encap(recipientPublicKey, options);
  try {
    return {enc, context: await makeContext('sender', aeadId, await keyScheduleBase(aeadId, sharedSecret, info))};
  } finally {
    wipe(sharedSecret);
  }
}

// SetupBaseR (§5.1.1). options: aeadId (default 0x0002).
export async function setupBaseReceiver(enc, recipientPrivateKey, info, options = {}) {
  const aeadId = options.aeadId ?? AEAD_AES_256_GCM;
  aeadParams(aeadId);
  const sharedSecret = await decap(enc, recipientPrivateKey);
  try {
    return await makeContext('receiver', aeadId, await keyScheduleBase(aeadId, sharedSecret, info));
  } finally {
    wipe(sharedSecret);
  }
}

// Single-shot seal: {enc, ciphertext}.
export async function seal(recipientPublicKey, info, aad, plaintext, options = {}) {
  const {enc, context} = await setupBaseSender(recipientPublicKey, info, options);
  try {
    return {enc, ciphertext: await context.seal(aad, plaintext)};
  } finally {
    context.dispose();
  }
}

// Single-shot open: the plaintext.
export async function open(recipientPrivateKey, enc, info, aad, ciphertext, options = {}) {
  const context = await setupBaseReceiver(enc, recipientPrivateKey, info, options);
  try {
    return await context.open(aad, ciphertext);
  } finally {
    context.dispose();
  }
}
