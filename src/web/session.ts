import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { derivedKey } from '../events/index.ts';

// The dashboard's session: a cookie holding the admin credential sealed with AES-256-GCM, its
// expiry inside the sealed value. The key is derived from the audit chain key (HKDF-SHA256), which
// lives sealed in the vault and is the same on every instance, so a session opened on one instance
// is good on all of them and nothing new has to be stored. The credential itself is checked again
// by the admin API on every page, so a revoked admin key stops working at once.

export const SESSION_COOKIE = 'warrant_ui';
export const SESSION_TTL_MS = 8 * 3600_000;
const SESSION_INFO = 'warrant/ui-session/v1';
const CSRF_INFO = 'warrant/ui-csrf/v1';
const VERSION = 'v1';
// Binds a ciphertext to this use: a value sealed for something else under the same key would not open.
const AAD = Buffer.from(SESSION_COOKIE);

export interface UiSession {
  /** The admin token or admin key (wak_…). */
  credential: string;
  /** Epoch ms after which the session is refused. */
  expiresAt: number;
}

export interface UiSessions {
  seal(credential: string): { value: string; expiresAt: number };
  /** The session of a cookie value, or undefined (tampered, expired, another key, malformed). */
  open(value: string | undefined): UiSession | undefined;
  /** The CSRF token of a session: an HMAC of its cookie value. */
  csrfToken(cookieValue: string): string;
  /** Constant-time check of a form's token against the session's. */
  csrfValid(cookieValue: string, token: string | undefined): boolean;
}

export function createUiSessions(deps: { chainKey: KeyObject; now: () => number; ttlMs?: number }): UiSessions {
  const key = derivedKey(deps.chainKey, SESSION_INFO);
  const csrfKey = derivedKey(deps.chainKey, CSRF_INFO);
  const ttl = deps.ttlMs ?? SESSION_TTL_MS;
  const csrfToken = (cookieValue: string) => createHmac('sha256', csrfKey).update(cookieValue).digest('base64url');
  return {
    seal(credential) {
      const expiresAt = deps.now() + ttl;
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(AAD);
      const body = Buffer.concat([cipher.update(JSON.stringify({ c: credential, exp: expiresAt }), 'utf8'), cipher.final()]);
      return { value: `${VERSION}.${Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url')}`, expiresAt };
    },
    open(value) {
      if (!value?.startsWith(`${VERSION}.`) || value.length > 8192) return undefined;
      const raw = Buffer.from(value.slice(VERSION.length + 1), 'base64url');
      if (raw.length < 12 + 16 + 1) return undefined;
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12)).setAAD(AAD);
        decipher.setAuthTag(raw.subarray(raw.length - 16));
        const plain = Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8');
        const v = JSON.parse(plain) as { c?: unknown; exp?: unknown };
        if (typeof v.c !== 'string' || typeof v.exp !== 'number' || v.exp <= deps.now()) return undefined;
        return { credential: v.c, expiresAt: v.exp };
      } catch {
        return undefined;
      }
    },
    csrfToken,
    csrfValid(cookieValue, token) {
      if (!token) return false;
      const want = Buffer.from(csrfToken(cookieValue));
      const got = Buffer.from(token);
      return got.length === want.length && timingSafeEqual(got, want);
    },
  };
}

/** The Set-Cookie header of a session (or of its removal: `value` empty, `maxAgeSeconds` 0). */
export function sessionCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=/ui; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

/** One cookie's value from a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of header?.split(';') ?? []) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}
