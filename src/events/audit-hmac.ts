import { createHmac, type KeyObject } from 'node:crypto';
import { derivedKey } from './chain.ts';

// Sensitive values in audit entries are keyed HMACs, never plaintext (docs/audit.md, "Keyed
// values"): a client IP, a token's fingerprint, a session id or a tool call's arguments can be
// matched against the log by someone who holds the store's key ring ("was this token / this IP /
// these arguments in it?"), and told apart from one another within the log, but not read back from
// an export, a SIEM or a leaked dump. A bare hash would not do: an IPv4 address or a short argument
// is found from its SHA-256 by trying them all.
//
// Each kind has its own key, derived from the audit chain key (HKDF-SHA256, `info` below): the
// chain key lives sealed in the vault, is the same on every instance and never changes (`warrant
// keys rotate` re-wraps it), so a value hashes the same everywhere and for good. A value of one
// kind cannot be matched against a field of another.

export type AuditHmacKind = 'arguments' | 'client_ip' | 'token' | 'session';

const INFO: Record<AuditHmacKind, string> = {
  // Kept from before this helper existed: earlier `arguments_hash` values still check.
  arguments: 'warrant mcp tool arguments',
  client_ip: 'warrant audit client_ip',
  token: 'warrant audit token',
  session: 'warrant audit session',
};

/** How the value is written: `hmac-sha256:` then the base64url MAC (43 characters). */
export const AUDIT_HMAC_PREFIX = 'hmac-sha256:';

/** One address, however the socket spelled it: an IPv4-mapped IPv6 address is its IPv4 one. */
export function normalizeIp(ip: string): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return (v4 ? v4[1]! : ip).toLowerCase();
}

/**
 * `hmac(kind, value)` → `hmac-sha256:…`. Strings are hashed as UTF-8 (client IPs normalized
 * first); callers pass a canonical form where a value has several (tool arguments: canonical JSON).
 */
export function createAuditHmac(chainKey: KeyObject) {
  const keys = new Map<AuditHmacKind, Buffer>();
  return function auditHmac(kind: AuditHmacKind, value: string | Buffer): string {
    let key = keys.get(kind);
    if (!key) keys.set(kind, (key = derivedKey(chainKey, INFO[kind])));
    const input = kind === 'client_ip' && typeof value === 'string' ? normalizeIp(value) : value;
    return `${AUDIT_HMAC_PREFIX}${createHmac('sha256', key).update(input).digest('base64url')}`;
  };
}

export type AuditHmac = ReturnType<typeof createAuditHmac>;
