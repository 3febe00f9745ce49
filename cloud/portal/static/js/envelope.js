// Sealed credentials for the portal: the browser-side twin of SealCredentials in
// //common/crypto/envelope.cc. A username and password are sealed with HPKE to the public key of a
// machine, machine group or gateway cluster, so the cloud stores what only that key can open:
//
//   suite      X25519 / HKDF-SHA256 / AES-256-GCM (0x0020 / 0x0001 / 0x0002)
//   info       "tether/credential/v1"
//   aad        connection_id (UTF-8) || recipient_key_id
//   key id     first 16 bytes of SHA-256(raw recipient public key)
//   plaintext  serialized tether.proto.SealedCredentialPlaintext {1: username, 2: secret}
//
// sealCredentials returns the proto3 JSON form of tether.proto.SealedEnvelope, ready to go into a
// REST request body: {kemId, kdfId, aeadId, recipientKeyId, enc, ciphertext, connectionId} with
// bytes in standard base64.
//
// Invalid input rejects with an EnvelopeError (code 'invalid-argument'); HPKE failures reject with
// hpke.js's HpkeError.

import {
  AEAD_AES_256_GCM,
  KDF_HKDF_SHA256,
  KEM_X25519_HKDF_SHA256,
  X25519_KEY_SIZE,
  seal,
} from './hpke.js';

export const CREDENTIAL_INFO = 'tether/credential/v1';
export const KEY_ID_SIZE = 16;

// The same bounds as envelope.cc: any real account fits, junk is refused early.
const MAX_USERNAME_BYTES = 256;
const MAX_PASSWORD_BYTES = 4096;

export class EnvelopeError extends Error {
  constructor(message) {
    super(message);
    this.name = 'EnvelopeError';
    this.code = 'invalid-argument';
  }
}

const encoder = new TextEncoder();

// --- base64 (RFC 4648 §4, padded), as proto3 JSON writes bytes ------------------------------------

export function base64Encode(data) {
  if (!(data instanceof Uint8Array)) throw new EnvelopeError('base64Encode takes a Uint8Array');
  let binary = '';
  const chunk = 0x8000; // keeps String.fromCharCode's argument count small
  for (let i = 0; i < data.length; i += chunk) {
    binary += String.fromCharCode.apply(null, data.subarray(i, i + chunk));
  }
  return btoa(binary);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

// Strict: standard alphabet, padding required, no whitespace (as the C++ Base64Decode).
export function base64Decode(text) {
  if (typeof text !== 'string' || !BASE64.test(text)) {
    throw new EnvelopeError('not standard padded base64');
  }
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; ++i) out[i] = binary.charCodeAt(i);
  return out;
}

// --- the few protobuf bits SealedCredentialPlaintext needs ----------------------------------------

function varint(n) {
  const out = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

// Serializes SealedCredentialPlaintext {1: username (string), 2: secret (bytes)} exactly as the C++
// protobuf runtime does: fields in number order, length-delimited (wire type 2), and a proto3 field
// holding its default (empty) value left out.
export function encodeCredentialPlaintext(usernameBytes, secretBytes) {
  const fields = [[1, usernameBytes], [2, secretBytes]].filter(([, value]) => value.length > 0);
  const headers = fields.map(([number, value]) => Uint8Array.from([(number << 3) | 2, ...varint(value.length)]));
  const out = new Uint8Array(fields.reduce((n, [, value], i) => n + headers[i].length + value.length, 0));
  let offset = 0;
  fields.forEach(([, value], i) => {
    out.set(headers[i], offset);
    offset += headers[i].length;
    out.set(value, offset);
    offset += value.length;
  });
  return out;
}

// --- sealing --------------------------------------------------------------------------------------

// DESIGN §2: the id of a public key is the first 16 bytes of its SHA-256.
export async function recipientKeyId(publicKey) {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', publicKey));
  return digest.slice(0, KEY_ID_SIZE);
}

// Seals {username, password} for `connectionId` to `recipientPublicKey` (Uint8Array, raw 32-byte
// X25519). `password` is a string or a Uint8Array. Returns the SealedEnvelope's proto3 JSON object.
//
// The copies made here (the password's UTF-8 bytes, the serialized plaintext) are overwritten once
// sealed. What JS cannot wipe: a password passed as a string (strings are immutable; drop every
// reference to it, e.g. clear the form field), and a Uint8Array password, which stays the caller's
// to fill(0).
export async function sealCredentials({recipientPublicKey, connectionId, username, password}) {
  if (!(recipientPublicKey instanceof Uint8Array) || recipientPublicKey.length !== X25519_KEY_SIZE) {
    throw new EnvelopeError(`recipient public key must be ${X25519_KEY_SIZE} bytes`);
  }
  if (typeof connectionId !== 'string' || connectionId.length === 0) {
    throw new EnvelopeError('connection id is empty');
  }
  if (typeof username !== 'string') throw new EnvelopeError('username must be a string');
  const usernameBytes = encoder.encode(username);
  if (usernameBytes.length === 0 || usernameBytes.length > MAX_USERNAME_BYTES) {
    throw new EnvelopeError(`username must be 1 to ${MAX_USERNAME_BYTES} bytes`);
  }
  let passwordBytes;
  if (typeof password === 'string') {
    passwordBytes = encoder.encode(password);
  } else if (password instanceof Uint8Array) {
    passwordBytes = password.slice();
  } else {
    throw new EnvelopeError('password must be a string or a Uint8Array');
  }

  let plaintext;
  try {
    if (passwordBytes.length > MAX_PASSWORD_BYTES) {
      throw new EnvelopeError(`password must be at most ${MAX_PASSWORD_BYTES} bytes`);
    }
    plaintext = encodeCredentialPlaintext(usernameBytes, passwordBytes);
    const keyId = await recipientKeyId(recipientPublicKey);
    const aad = new Uint8Array([...encoder.encode(connectionId), ...keyId]);
    const {enc, ciphertext} = await seal(recipientPublicKey, encoder.encode(CREDENTIAL_INFO), aad,
        plaintext, {aeadId: AEAD_AES_256_GCM});
    return {
      kemId: KEM_X25519_HKDF_SHA256,
      kdfId: KDF_HKDF_SHA256,
      aeadId: AEAD_AES_256_GCM,
      recipientKeyId: base64Encode(keyId),
      enc: base64Encode(enc),
      ciphertext: base64Encode(ciphertext),
      connectionId,
    };
  } finally {
    passwordBytes.fill(0);
    if (plaintext) plaintext.fill(0);
  }
}
