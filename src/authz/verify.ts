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

const invalidToken = (detail: string) => new WarrantError('agent_unauthenticated', detail);

export function createAccessTokenVerifier(deps: AccessTokenVerifierDeps) {
  const repo = createAgentsRepo(deps.store.db);
  const cacheMs = Math.min(deps.agentCacheMs ?? 1000, 1000);
  let jwks: { keys: JWK[]; set: ReturnType<typeof createLocalJWKSet> } | undefined;
  const agentCache = new Map<string, { at: number; value: Promise<AuthenticatedAgent | undefined> }>();

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
    if (!token || token.length > MAX_TOKEN_LENGTH || token.split('.').length !== 3) throw invalidToken('the access token is malformed');
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
      if (err instanceof joseErrors.JWTExpired) throw invalidToken('the access token expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw invalidToken(`the access token's ${err.claim} claim is not valid here`);
      throw invalidToken('the access token is not one Warrant issued');
    }
    // RFC 8707 / RFC 9068 §4: a token for exactly this resource, not one among several.
    const aud = Array.isArray(payload.aud) && payload.aud.length === 1 ? payload.aud[0] : payload.aud;
    if (aud !== opts.resource) throw invalidToken('the access token is for another resource (aud)');
    const agentId = payload.agent_id;
    const clientId = payload.client_id;
    if (typeof agentId !== 'string' || typeof clientId !== 'string') throw invalidToken('the access token names no agent');
    const agent = await activeAgent(agentId);
    if (!agent) throw invalidToken("the token's agent is revoked or expired, or its owner is offboarded");
    // The owner (authorization code, device flow) or the client itself (client credentials).
    if (payload.sub !== undefined && payload.sub !== agent.owner && payload.sub !== clientId) throw invalidToken("the access token's sub does not match its agent");
    // A delegated token (RFC 8693, token-exchange.ts) lives only while every agent acting in its `act` chain does.
    for (let a = payload.act as Record<string, unknown> | undefined, n = 0; a !== undefined; a = a.act as Record<string, unknown> | undefined, n++) {
      if (n >= 4 || !a || typeof a !== 'object' || typeof a.sub !== 'string') throw invalidToken("the access token's act claim is malformed");
      if (a.sub !== agentId && (await activeAgent(a.sub))?.owner !== agent.owner) throw invalidToken('an agent acting in the delegation chain (act) is revoked or expired');
    }
    const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [];
    return { agentId, owner: agent.owner, scopes, clientId, agent, expiresAt: payload.exp! };
  };
}

export type VerifyAccessToken = ReturnType<typeof createAccessTokenVerifier>;
