import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { WarrantError } from '../errors/index.ts';
import { createAgentsRepo } from '../agents/repo.ts';
import { authenticatedAgentOf, type AuthenticatedAgent } from '../agents/view.ts';
import type { Store } from '../store/index.ts';

// The one verifier of Warrant's own access tokens (RFC 9068 JWTs from authz/), for every resource
// server inside Warrant (/mcp/warrant, the MCP gateway's /mcp/{server}): signature against the
// authorization server's own keys, `typ: at+jwt`, `iss`, `aud` exactly the resource, not expired,
// and the agent the client became still active with an owner not offboarded. The agent's state
// is read from the store at most `agentCacheMs` (≤ 1 s) old, so a revocation or an offboarding cuts
// tokens already issued within a second, everywhere.

export interface VerifiedAccessToken {
  agentId: string;
  owner: string;
  scopes: string[];
  clientId: string;
  /** The agent with its connection grants, as agent-key authentication gives it. */
  agent: AuthenticatedAgent;
  /** Seconds since the epoch. */
  expiresAt: number;
}

export interface AccessTokenVerifierDeps {
  store: Pick<Store, 'db'>;
  now: () => number;
  /** The issuer once the server started; undefined before. */
  issuer: () => string | undefined;
  /** Private JWKs of the server (only their public members are used). */
  signingKeys: () => JWK[] | undefined;
  /** How long an agent's state is reused, in ms (default 1000; more is refused). */
  agentCacheMs?: number;
}

const PUBLIC_MEMBERS = ['kty', 'kid', 'alg', 'use', 'n', 'e', 'crv', 'x', 'y'] as const;
const publicOf = (k: JWK): JWK => Object.fromEntries(PUBLIC_MEMBERS.filter((m) => k[m] !== undefined).map((m) => [m, k[m]])) as JWK;

/** Access tokens are this long at most (a bearer longer than this is not ours). */
const MAX_TOKEN_LENGTH = 8192;

/**
 * Why a token was refused, for the audit of the refusal (`mcp.token_refused`): a stable `reason`
 * and, once the signature held (the claims are the issuer's), the agent it names. Not in the answer.
 */
export type TokenRefusalReason =
  | 'malformed'
  | 'not_issued_here'
  | 'expired'
  | 'claim_invalid'
  | 'wrong_audience'
  | 'no_agent'
  | 'agent_inactive'
  | 'sub_mismatch'
  | 'actor_inactive';

export class TokenRefusal extends WarrantError {
  constructor(
    detail: string,
    readonly reason: TokenRefusalReason,
    readonly agentId?: string,
  ) {
    super('agent_unauthenticated', detail);
  }
}

const invalidToken = (detail: string, reason: TokenRefusalReason, claims?: JWTPayload) =>
  new TokenRefusal(detail, reason, typeof claims?.agent_id === 'string' ? claims.agent_id : undefined);

/** An agent's last_used_at is written at most this often (as for API keys, agents/auth.ts). */
const TOUCH_INTERVAL_MS = 60_000;

export function createAccessTokenVerifier(deps: AccessTokenVerifierDeps) {
  const repo = createAgentsRepo(deps.store.db);
  const cacheMs = Math.min(deps.agentCacheMs ?? 1000, 1000);
  let jwks: { keys: JWK[]; set: ReturnType<typeof createLocalJWKSet> } | undefined;
  const agentCache = new Map<string, { at: number; value: Promise<AuthenticatedAgent | undefined> }>();
  /** agent id → when this process last recorded its use: an agent used only through access tokens is not `idle` (agents/orphans.ts). */
  const touched = new Map<string, number>();

  /** Records the agent's use at most once a minute, without making the request wait; a failed write is only lost. */
  function touch(agentId: string): void {
    const now = deps.now();
    if (now - (touched.get(agentId) ?? -Infinity) < TOUCH_INTERVAL_MS) return;
    if (touched.size >= 10_000) touched.clear();
    touched.set(agentId, now);
    repo.touch(agentId, now, TOUCH_INTERVAL_MS).catch(() => undefined);
  }

  function keySet() {
    const keys = deps.signingKeys();
    if (!keys) return undefined;
    if (!jwks || jwks.keys !== keys) jwks = { keys, set: createLocalJWKSet({ keys: keys.map(publicOf) }) };
    return jwks.set;
  }

  async function loadAgent(agentId: string): Promise<AuthenticatedAgent | undefined> {
    const row = await repo.get(agentId);
    if (!row || row.status !== 'active') return undefined;
    if (row.expires_at !== null && Number(row.expires_at) <= deps.now()) return undefined;
    const owner = await deps.store.db.selectFrom('owners').select('status').where('id', '=', row.owner).executeTakeFirst();
    if (owner?.status === 'offboarded') return undefined;
    const grants = (await repo.grantsOf([row.id])).get(row.id) ?? [];
    return authenticatedAgentOf(row, grants);
  }

  function activeAgent(agentId: string): Promise<AuthenticatedAgent | undefined> {
    const now = deps.now();
    const hit = agentCache.get(agentId);
    if (hit && now - hit.at < cacheMs) return hit.value;
    const value = loadAgent(agentId);
    agentCache.set(agentId, { at: now, value });
    value.catch(() => agentCache.delete(agentId));
    if (agentCache.size > 10_000) for (const [k, v] of agentCache) if (now - v.at >= cacheMs) agentCache.delete(k);
    return value;
  }

  /**
   * Verifies a bearer as one of Warrant's access tokens for `resource`. Throws
   * `agent_unauthenticated` (401, `invalid_token`) for anything else; the detail never holds the token.
   */
  return async function verifyAccessToken(token: string, opts: { resource: string }): Promise<VerifiedAccessToken> {
    const issuer = deps.issuer();
    const set = keySet();
    if (!issuer || !set) throw new WarrantError('unavailable', 'the authorization server is starting', { retry_after: 1 });
    if (!token || token.length > MAX_TOKEN_LENGTH || token.split('.').length !== 3) throw invalidToken('the access token is malformed', 'malformed');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, set, {
        issuer,
        typ: 'at+jwt',
        algorithms: ['RS256'],
        currentDate: new Date(deps.now()),
        requiredClaims: ['exp', 'aud', 'client_id'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw invalidToken('the access token expired', 'expired', err.payload);
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw invalidToken(`the access token's ${err.claim} claim is not valid here`, 'claim_invalid', err.payload);
      throw invalidToken('the access token is not one Warrant issued', 'not_issued_here');
    }
    // RFC 8707 / RFC 9068 §4: a token for exactly this resource, not one among several.
    const aud = Array.isArray(payload.aud) && payload.aud.length === 1 ? payload.aud[0] : payload.aud;
    if (aud !== opts.resource) throw invalidToken('the access token is for another resource (aud)', 'wrong_audience', payload);
    const agentId = payload.agent_id;
    const clientId = payload.client_id;
    if (typeof agentId !== 'string' || typeof clientId !== 'string') throw invalidToken('the access token names no agent', 'no_agent');
    const agent = await activeAgent(agentId);
    if (!agent) throw invalidToken("the token's agent is revoked or expired, or its owner is offboarded", 'agent_inactive', payload);
    // The owner (authorization code, device flow) or the client itself (client credentials).
    if (payload.sub !== undefined && payload.sub !== agent.owner && payload.sub !== clientId) throw invalidToken("the access token's sub does not match its agent", 'sub_mismatch', payload);
    // A delegated token (RFC 8693, token-exchange.ts) lives only while every agent acting in its `act` chain does.
    for (let a = payload.act as Record<string, unknown> | undefined, n = 0; a !== undefined; a = a.act as Record<string, unknown> | undefined, n++) {
      if (n >= 4 || !a || typeof a !== 'object' || typeof a.sub !== 'string') throw invalidToken("the access token's act claim is malformed", 'claim_invalid', payload);
      if (a.sub !== agentId && (await activeAgent(a.sub))?.owner !== agent.owner) throw invalidToken('an agent acting in the delegation chain (act) is revoked or expired', 'actor_inactive', payload);
    }
    const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [];
    touch(agentId);
    return { agentId, owner: agent.owner, scopes, clientId, agent, expiresAt: payload.exp! };
  };
}

export type VerifyAccessToken = ReturnType<typeof createAccessTokenVerifier>;
