import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** URL-safe random token of `bytes` bytes of entropy, with an optional prefix (`wrt_`). */
export function randomToken(bytes = 32, prefix = ''): string {
  return prefix + randomBytes(bytes).toString('base64url');
}

/**
 * Hash for high-entropy secrets (API keys, admin tokens): SHA-256 is enough when the secret
 * itself has 256 bits of randomness; a slow KDF would only add latency to every call.
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('base64url');
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  // Compare fixed-length digests so the length of the secret does not leak through timing either.
  return timingSafeEqual(createHash('sha256').update(x).digest(), createHash('sha256').update(y).digest()) && x.length === y.length;
}

export function verifySecret(secret: string, storedHash: string): boolean {
  return safeEqual(hashSecret(secret), storedHash);
}
