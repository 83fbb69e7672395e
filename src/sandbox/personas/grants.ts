import { createHash, randomBytes, randomInt, randomUUID } from 'node:crypto';
import type { Persona } from './types.ts';

// A persona's in-memory grants: authorization codes, access and refresh tokens, and the rotation,
// grace and reuse rules of persona.token. Tokens are random and opaque; nothing here is logged.

export const codeTtlMs = 10 * 60 * 1000;

export interface Grant {
  id: string;
  /** Grants revoked together (Slack's bot and user token sets of one install). */
  family: string;
  clientId: string;
  scopes: string[];
  tenantId: string;
  userId: string;
  secondary: boolean;
  /** A refresh token comes with the code exchange (Google access_type=offline, offline_access …). */
  withRefresh: boolean;
  revoked: boolean;
}

interface Code {
  grants: Grant[];
  redirectUri: string;
  challenge?: string;
  expiresAt: number;
  used: boolean;
}

interface AccessRecord {
  grant: Grant;
  expiresAt?: number;
  invalidated: boolean;
}

interface RefreshRecord {
  grant: Grant;
  issuedAt: number;
  /** When it was rotated out; a use after this is a reuse (within the grace: allowed). */
  consumedAt?: number;
}

export type Lookup = { ok: true; grant: Grant } | { ok: false; reason: 'expired' | 'invalid' | 'revoked' };

export type RefreshOutcome =
  | { ok: true; grant: Grant; refreshToken?: string; rotated: boolean }
  | { ok: false; reuse: boolean };

const opaque = (prefix = '') => `${prefix}${randomBytes(24).toString('base64url')}`;

export function s256(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

export function createGrantStore(persona: Persona) {
  const codes = new Map<string, Code>();
  const access = new Map<string, AccessRecord>();
  const refresh = new Map<string, RefreshRecord>();
  const rules = persona.token;

  const newTenant = () => (persona.tenantKind === 'numeric' ? String(randomInt(1e9, 9e9)) + String(randomInt(1e6, 9e6)) : randomUUID());

  function issueAccess(grant: Grant, ttlSeconds: number | undefined): { token: string; expiresIn?: number } {
    const token = opaque(grant.secondary ? rules.prefix?.secondaryAccess : rules.prefix?.access);
    access.set(token, { grant, expiresAt: ttlSeconds === undefined ? undefined : Date.now() + ttlSeconds * 1000, invalidated: false });
    return { token, expiresIn: ttlSeconds };
  }

  function issueRefresh(grant: Grant): string {
    const token = opaque(grant.secondary ? rules.prefix?.secondaryRefresh : rules.prefix?.refresh);
    refresh.set(token, { grant, issuedAt: Date.now() });
    return token;
  }

  function revokeFamily(family: string): void {
    for (const r of [...access.values(), ...refresh.values()]) if (r.grant.family === family) r.grant.revoked = true;
    for (const c of codes.values()) if (c.grants.some((g) => g.family === family)) c.used = true;
  }

  return {
    /** A code for a new grant (and, with `secondaryScopes`, a second one of the same family). */
    createCode(input: { clientId: string; scopes: string[]; secondaryScopes?: string[]; withRefresh: boolean; redirectUri: string; challenge?: string }): { code: string; tenantId: string } {
      const family = randomUUID();
      const tenantId = newTenant();
      const userId = `sandbox-user-${randomBytes(4).toString('hex')}`;
      const base = { family, clientId: input.clientId, tenantId, userId, withRefresh: input.withRefresh, revoked: false };
      const grants: Grant[] = [{ ...base, id: randomUUID(), scopes: input.scopes, secondary: false }];
      if (input.secondaryScopes) grants.push({ ...base, id: randomUUID(), scopes: input.secondaryScopes, secondary: true });
      const code = opaque();
      codes.set(code, { grants, redirectUri: input.redirectUri, challenge: input.challenge, expiresAt: Date.now() + codeTtlMs, used: false });
      return { code, tenantId };
    },

    /** Redeems a code: single use (a second use revokes what the first issued), redirect_uri and PKCE checked. */
    redeemCode(code: string, clientId: string, redirectUri: string | undefined, verifier: string | undefined):
      | { ok: true; grants: Grant[] }
      | { ok: false; error: 'invalid_grant' | 'redirect_uri_mismatch' | 'invalid_code_verifier' } {
      const c = codes.get(code);
      if (!c || c.grants[0]!.clientId !== clientId) return { ok: false, error: 'invalid_grant' };
      if (c.used || c.expiresAt < Date.now() || c.grants[0]!.revoked) {
        if (c.used) revokeFamily(c.grants[0]!.family);
        return { ok: false, error: 'invalid_grant' };
      }
      if (redirectUri !== c.redirectUri) return { ok: false, error: 'redirect_uri_mismatch' };
      if (c.challenge !== undefined ? !verifier || s256(verifier) !== c.challenge : verifier !== undefined) return { ok: false, error: 'invalid_code_verifier' };
      c.used = true;
      return { ok: true, grants: c.grants };
    },

    issueAccess,
    issueRefresh,

    /** One refresh under the persona's rotation, grace and reuse rules. */
    refresh(token: string, clientId: string): RefreshOutcome {
      const r = refresh.get(token);
      if (!r || r.grant.clientId !== clientId || r.grant.revoked) return { ok: false, reuse: false };
      const now = Date.now();
      if (r.consumedAt !== undefined && !rules.reusable) {
        if (rules.graceSeconds !== undefined && now - r.consumedAt <= rules.graceSeconds * 1000) {
          return { ok: true, grant: r.grant, refreshToken: issueRefresh(r.grant), rotated: true };
        }
        if (rules.reuseRevokesGrant) revokeFamily(r.grant.family);
        return { ok: false, reuse: true };
      }
      const rotation = rules.rotation;
      const rotate = rotation === 'always' || (typeof rotation === 'object' && now - r.issuedAt >= rotation.afterSeconds * 1000);
      if (!rotate) return { ok: true, grant: r.grant, refreshToken: rules.echoRefreshToken || typeof rotation === 'object' ? token : undefined, rotated: false };
      r.consumedAt ??= now;
      return { ok: true, grant: r.grant, refreshToken: issueRefresh(r.grant), rotated: true };
    },

    lookupAccess(token: string): Lookup {
      const a = access.get(token);
      if (!a) return { ok: false, reason: 'invalid' };
      if (a.grant.revoked) return { ok: false, reason: 'revoked' };
      if (a.invalidated) return { ok: false, reason: 'invalid' };
      if (a.expiresAt !== undefined && a.expiresAt <= Date.now()) return { ok: false, reason: 'expired' };
      return { ok: true, grant: a.grant };
    },

    /** Which kind of live token this is, for revocation and introspection. */
    find(token: string): { kind: 'access' | 'refresh'; grant: Grant; active: boolean } | undefined {
      const a = access.get(token);
      if (a) return { kind: 'access', grant: a.grant, active: this.lookupAccess(token).ok };
      const r = refresh.get(token);
      if (r) return { kind: 'refresh', grant: r.grant, active: !r.grant.revoked && (r.consumedAt === undefined || !!rules.reusable) };
      return undefined;
    },

    /** Kills one access token; false when unknown. */
    invalidateAccess(token: string): boolean {
      const a = access.get(token);
      if (!a) return false;
      a.invalidated = true;
      return true;
    },

    /** Revokes the grant (family) behind an access token, refresh token or code; false when unknown or already revoked. */
    revokeGrantOf(token: string): boolean {
      const grant = access.get(token)?.grant ?? refresh.get(token)?.grant ?? codes.get(token)?.grants[0];
      if (!grant || grant.revoked) return false;
      revokeFamily(grant.family);
      return true;
    },

    /** Takes scopes away from the grant behind an access or refresh token (an admin narrowing an app's grant upstream); false when unknown. */
    withdrawScopes(token: string, scopes: readonly string[]): boolean {
      const grant = access.get(token)?.grant ?? refresh.get(token)?.grant;
      if (!grant) return false;
      const gone = new Set(scopes.map((s) => s.toLowerCase()));
      grant.scopes = grant.scopes.filter((s) => !gone.has(s.toLowerCase()));
      return true;
    },

    /** Drops expired codes so a long-running sandbox does not grow without bound. */
    sweep(): void {
      const now = Date.now();
      for (const [k, c] of codes) if (c.expiresAt < now - codeTtlMs) codes.delete(k);
    },
  };
}

export type GrantStore = ReturnType<typeof createGrantStore>;
