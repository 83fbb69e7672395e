import { randomBytes } from 'node:crypto';
import { hashSecret } from '../crypto/index.ts';

// An agent's API key: `wrt_<key id>_<secret>`.
//  - key id: 12 random alphanumeric characters (~71 bits), stored in the clear in agents.key_id
//    and used only to find the row; it never contains `_`, so the key splits unambiguously.
//  - secret: 32 random bytes (256 bits), base64url (43 characters); only its SHA-256 is stored.
// A secret with 256 bits of randomness needs no slow KDF (see crypto/secrets.ts).

export const API_KEY_PREFIX = 'wrt_';
const KEY_ID_LENGTH = 12;
const SECRET_BYTES = 32;
const SECRET_LENGTH = Math.ceil((SECRET_BYTES * 8) / 6); // 43 base64url characters, unpadded
const API_KEY_LENGTH = API_KEY_PREFIX.length + KEY_ID_LENGTH + 1 + SECRET_LENGTH;
const API_KEY_PATTERN = new RegExp(`^${API_KEY_PREFIX}([A-Za-z0-9]{${KEY_ID_LENGTH}})_([A-Za-z0-9_-]{${SECRET_LENGTH}})$`);

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** Uniformly random alphanumeric string (rejection sampling: no modulo bias). */
function randomAlphanumeric(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte >= 248) continue; // 248 = 62 * 4
      out += ALPHABET[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

export interface MintedKey {
  keyId: string;
  /** The whole key, shown to the caller once. */
  apiKey: string;
  /** What is stored: the SHA-256 of the secret part. */
  keyHash: string;
}

export function mintApiKey(): MintedKey {
  const keyId = randomAlphanumeric(KEY_ID_LENGTH);
  const secret = randomBytes(SECRET_BYTES).toString('base64url');
  return { keyId, apiKey: `${API_KEY_PREFIX}${keyId}_${secret}`, keyHash: hashSecret(secret) };
}

/** Splits a presented key into its id and secret; undefined when it is not shaped like one. */
export function parseApiKey(presented: string): { keyId: string; secret: string } | undefined {
  if (presented.length !== API_KEY_LENGTH) return undefined;
  const m = API_KEY_PATTERN.exec(presented);
  return m ? { keyId: m[1]!, secret: m[2]! } : undefined;
}

/**
 * Compared against when the key id is unknown, so an unknown id costs the same hashing and
 * comparison as a wrong secret: the answer's timing does not tell which key ids exist.
 */
export const DUMMY_KEY_HASH = hashSecret(randomBytes(SECRET_BYTES).toString('base64url'));
