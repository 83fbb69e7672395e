import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { KeyRing } from './keyring.ts';

// Envelope encryption: each record gets a fresh 256-bit data key; the data key is sealed
// under the key ring's active key-encryption key (KEK). Both layers are AES-256-GCM and both
// bind the record's identity (`aad`) so a ciphertext moved to another row or field fails to open.

const IV_BYTES = 12;
const TAG_BYTES = 16;
const FORMAT = 'v1';

export interface Sealed {
  /** Id of the KEK that wraps the data key. */
  kekId: string;
  /** base64(iv | encrypted data key | tag) */
  wrappedKey: string;
  /** base64(iv | encrypted value | tag) */
  ciphertext: string;
}

export class CryptoError extends Error {
  override name = 'CryptoError';
  constructor(
    readonly code: 'unknown_key' | 'tampered' | 'malformed',
    message: string,
  ) {
    super(message);
  }
}

function gcmSeal(key: Buffer, plaintext: Buffer, aad: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64');
}

function gcmOpen(key: Buffer, sealed: string, aad: string): Buffer {
  const raw = Buffer.from(sealed, 'base64');
  if (raw.length < IV_BYTES + TAG_BYTES) throw new CryptoError('malformed', 'ciphertext is too short');
  const iv = raw.subarray(0, IV_BYTES);
  const tag = raw.subarray(raw.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new CryptoError('tampered', 'ciphertext failed authentication (tampered, or bound to another record)');
  }
}

const wrapAad = (kekId: string, aad: string) => `${FORMAT}|dek|${kekId}|${aad}`;
const dataAad = (aad: string) => `${FORMAT}|data|${aad}`;

function kek(ring: KeyRing, id: string): Buffer {
  const key = ring.get(id);
  if (!key) throw new CryptoError('unknown_key', `key-encryption key ${id} is not in the key ring`);
  return key;
}

export function seal(ring: KeyRing, plaintext: string, aad: string): Sealed {
  const dataKey = randomBytes(32);
  try {
    const kekId = ring.activeId;
    return {
      kekId,
      wrappedKey: gcmSeal(kek(ring, kekId), dataKey, wrapAad(kekId, aad)),
      ciphertext: gcmSeal(dataKey, Buffer.from(plaintext, 'utf8'), dataAad(aad)),
    };
  } finally {
    dataKey.fill(0);
  }
}

export function open(ring: KeyRing, sealed: Sealed, aad: string): string {
  const dataKey = gcmOpen(kek(ring, sealed.kekId), sealed.wrappedKey, wrapAad(sealed.kekId, aad));
  try {
    return gcmOpen(dataKey, sealed.ciphertext, dataAad(aad)).toString('utf8');
  } finally {
    dataKey.fill(0);
  }
}

/** Re-wraps the data key under the active KEK; the data ciphertext is untouched. */
export function rewrap(ring: KeyRing, sealed: Sealed, aad: string): Sealed {
  if (sealed.kekId === ring.activeId) return sealed;
  const dataKey = gcmOpen(kek(ring, sealed.kekId), sealed.wrappedKey, wrapAad(sealed.kekId, aad));
  try {
    const kekId = ring.activeId;
    return { kekId, wrappedKey: gcmSeal(kek(ring, kekId), dataKey, wrapAad(kekId, aad)), ciphertext: sealed.ciphertext };
  } finally {
    dataKey.fill(0);
  }
}
