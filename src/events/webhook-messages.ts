import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { AuditEventRow } from '../store/index.ts';

// What a webhook delivery is made of (Standard Webhooks, https://www.standardwebhooks.com/):
// the secret, the signature, the stable message id, the payload, which events a subscription
// matches, and the retry schedule. Pure functions; webhooks.ts does the I/O.

export interface RetrySettings {
  /** Delay after the first failed attempt. */
  baseMs: number;
  /** Each further failure multiplies the delay by this. */
  factor: number;
  /** No delay is longer than this. */
  capMs: number;
  /** Attempts in all, the first one included; then the delivery is `failed`. */
  maxAttempts: number;
}

const SECRET_PREFIX = 'whsec_';
/** The code of a delivery refused because its address is not public (webhook-target.ts). */
export const ADDRESS_REFUSED = 'EWARRANT_ADDRESS_REFUSED';
/** `*`, an exact type (`connection.revoked`) or a prefix wildcard (`connection.*`). */
export const EVENT_PATTERN = /^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$/;
const MAX_URL_LENGTH = 2048;

/** Why `url` cannot be a webhook's target, or undefined when it can. */
export function urlProblem(url: string): string | undefined {
  if (url.length > MAX_URL_LENGTH) return `must be at most ${MAX_URL_LENGTH} characters`;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'must be an absolute http or https URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'must be an absolute http or https URL';
  return undefined;
}

export function matches(patterns: readonly string[], type: string): boolean {
  return patterns.some((p) => p === '*' || p === type || (p.endsWith('.*') && type.startsWith(p.slice(0, -1))));
}

/** `whsec_` + base64 of 32 random bytes (Standard Webhooks: a 24 to 64 byte key). */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

/** Standard Webhooks signature: `v1,` + base64 HMAC-SHA256 over `${id}.${timestamp}.${body}`. */
export function sign(secret: string, msgId: string, timestampSeconds: number, body: string): string {
  const key = Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64');
  return `v1,${createHmac('sha256', key).update(`${msgId}.${timestampSeconds}.${body}`).digest('base64')}`;
}

/** The stable message id of one event for one webhook: the same across retries and instances. */
export const messageId = (webhookId: string, eventId: string) =>
  `msg_${createHash('sha256').update(`${webhookId}\n${eventId}`).digest('hex').slice(0, 32)}`;

/** `{type, timestamp, data: {id, subject, actor, …event data}}`; audit data never holds a secret. */
export function payloadOf(e: Pick<AuditEventRow, 'id' | 'type' | 'at' | 'actor' | 'subject' | 'data'>): string {
  const { id: _id, subject: _subject, actor: _actor, ...rest } = JSON.parse(e.data) as Record<string, unknown>;
  return JSON.stringify({ type: e.type, timestamp: new Date(e.at).toISOString(), data: { id: e.id, subject: e.subject, actor: e.actor, ...rest } });
}

/** Delay before attempt `failed + 1`: exponential, ±20% jitter, at least the receiver's Retry-After, capped. */
export function retryDelayMs(failed: number, r: RetrySettings, retryAfterMs = 0, random = Math.random): number {
  const exp = r.baseMs * r.factor ** Math.max(0, failed - 1);
  return Math.floor(Math.min(r.capMs, Math.max(exp * (0.8 + 0.4 * random()), retryAfterMs)));
}

// A failure is named by its code only: error messages may carry the URL, whose path or query can
// itself be a credential (Slack-style hook URLs).
export function describe(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  const code = String(e?.code ?? e?.cause?.code ?? '');
  if (/TIMEOUT/.test(code)) return 'timeout';
  const known: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    UND_ERR_SOCKET: 'connection closed by the receiver',
    ENOTFOUND: 'host not found',
    EAI_AGAIN: 'host lookup failed',
    [ADDRESS_REFUSED]: 'address not allowed (not public)',
  };
  return known[code] ?? (/^[A-Z_]+$/.test(code) ? `request failed (${code})` : 'request failed');
}
