import { randomBytes } from 'node:crypto';
import { decodeJwt, SignJWT, type JWTPayload } from 'jose';
import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { AuthenticatedAgent } from '../agents/index.ts';
import { WarrantError } from '../errors/index.ts';
import type { AuditInput } from '../events/index.ts';
import type { Store } from '../store/index.ts';
import type { ClientAgents } from './agents.ts';
import { accessTokenSigner, type AuthzKeys } from './keys.ts';
import type { Resources } from './resources.ts';
import type { VerifyAccessToken } from './verify.ts';

// Delegation: RFC 8693 token exchange at Warrant's token endpoint. An agent presents its Warrant
// credential (its API key, or one of Warrant's own access tokens) and gets a narrower RFC 9068 JWT
// for exactly one of Warrant's resources. The answer never widens what the subject holds: its
// scopes are a subset of the subject's (for an agent key, of the resource's), its resource is the
// subject's or one under it, its lifetime ends no later than the subject's. `sub` stays the owner,
// `agent_id` stays the agent whose authority is delegated (its grants and allow-lists apply), and
// `act` (RFC 8693 §4.1) records who acts: the current actor outermost, earlier ones nested.
//
// The exchanging client is the actor. It must be registered and authenticated as it registered,
// and it must be an agent of the subject's owner (the owner consented to it, or an admin bound it):
// a client the owner never allowed cannot act for them, whatever token it holds. A public client
// (`none`) adds no actor: it may only narrow a credential already bound to its own agent.

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** Token types (RFC 8693 §3) Warrant accepts as `subject_token_type` and issues. */
export const tokenTypes = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  /** Warrant's own: an agent's API key (`wrt_…`). */
  agentKey: 'urn:warrant:params:oauth:token-type:agent-key',
} as const;

/** Actors in one token's `act` chain at most (owner → agent → sub-agent → …). */
export const MAX_ACTORS = 4;

const PARAMS = ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', 'resource', 'audience', 'scope'] as const;
/** Longest credential read (an access token is at most 8 KiB; an agent key far less). */
const MAX_SUBJECT_LENGTH = 8192;

/** One actor of the chain: an agent of the owner and, once a client acted, that client. */
export interface Actor {
  sub: string;
  client_id?: string;
}

interface Subject {
  owner: string;
  /** The agent whose authority the token carries. */
  agentId: string;
  /** Scopes the subject holds; undefined for an agent key (every scope of the resource). */
  scopes?: string[];
  /** Seconds since the epoch; undefined when the subject does not expire (an agent key without expiry). */
  exp?: number;
  /** Actors so far, the current one first. */
  chain: Actor[];
  /** The resource an access token is for; undefined for an agent key. */
  audience?: string;
  mayAct?: unknown;
}

export interface TokenExchangeDeps {
  issuer: string;
  keys: AuthzKeys;
  resources: Pick<Resources, 'resolve'>;
  clientAgents: Pick<ClientAgents, 'activeAgentOf'>;
  /** The agent service's key check (constant-time, cached). */
  authenticateAgent: (key: string) => Promise<AuthenticatedAgent>;
  verifyAccessToken: VerifyAccessToken;
  store: Pick<Store, 'db' | 'owners'>;
  logger: Logger;
  now: () => number;
  /** Longest lifetime of an exchanged token, in seconds (the access token TTL). */
  ttlSeconds: number;
  /**
   * Where exchanges are recorded (`authz.token_exchanged`, `authz.token_exchange_refused`), never a
   * token. An issued token is answered only once its entry is written (fail closed).
   */
  audit?: (entry: AuditInput) => Promise<void>;
}

/** What an exchange had established when it ended, for its audit entry. */
interface Seen {
  resource?: string;
  subjectType?: string;
  subject?: Subject;
  actorAgent?: string;
}

/** `agent_key` / `access_token`, the audit's names of the subject token types (never the token). */
const typeName = (t: string | undefined) => (t === tokenTypes.agentKey ? 'agent_key' : t === tokenTypes.accessToken ? 'access_token' : undefined);

const invalidRequest = (detail: string) => new errors.InvalidRequest(detail);

/** One string parameter; a repeated or empty one is refused, naming it. */
function single(params: Record<string, unknown>, name: string, required: true): string;
function single(params: Record<string, unknown>, name: string, required?: false): string | undefined;
function single(params: Record<string, unknown>, name: string, required = false): string | undefined {
  const v = params[name];
  if (v === undefined || v === '') {
    if (required) throw invalidRequest(`${name} is required`);
    return undefined;
  }
  if (typeof v !== 'string') throw invalidRequest(`${name} must be given once`);
  return v;
}

/** `resource` and `audience` (both may repeat in RFC 8693): one target, and a known one. */
function targetOf(params: Record<string, unknown>): string {
  const values = new Set<string>();
  for (const name of ['resource', 'audience']) {
    const v = params[name];
    for (const s of v === undefined ? [] : ([] as unknown[]).concat(v)) {
      if (typeof s !== 'string' || !s) throw invalidRequest(`${name} must be an absolute URI`);
      values.add(s);
    }
  }
  if (values.size === 0) throw invalidRequest('resource is required: the one Warrant resource the token is for (RFC 8707)');
  if (values.size > 1) throw new errors.InvalidTarget('exactly one resource: a token serves one audience (resource and audience must agree)');
  return [...values][0]!;
}

/** The `act` claim as a list, current actor first; a malformed one is refused. */
function chainOf(act: unknown): Actor[] | undefined {
  if (act === undefined) return undefined;
  const chain: Actor[] = [];
  let a: unknown = act;
  while (a !== undefined) {
    const o = a as Record<string, unknown>;
    if (!o || typeof o !== 'object' || typeof o.sub !== 'string' || (o.client_id !== undefined && typeof o.client_id !== 'string') || chain.length >= MAX_ACTORS) {
      throw invalidRequest('subject_token: its act claim is malformed');
    }
    chain.push({ sub: o.sub, ...(typeof o.client_id === 'string' ? { client_id: o.client_id } : {}) });
    a = o.act;
  }
  return chain;
}

/** The chain as RFC 8693 §4.1 nests it: the current actor outermost. */
function actClaim(chain: Actor[]): Record<string, unknown> {
  let act: Record<string, unknown> | undefined;
  for (const actor of [...chain].reverse()) act = { ...actor, ...(act ? { act } : {}) };
  return act!;
}

/** Registers the grant on the provider; every registered client may present it (the rules are here). */
export function registerTokenExchange(provider: Provider, deps: TokenExchangeDeps): void {
  const signer = accessTokenSigner(deps.keys);

  async function agentKeySubject(key: string): Promise<Subject> {
    let agent: AuthenticatedAgent;
    try {
      agent = await deps.authenticateAgent(key);
    } catch (err) {
      // A suspended agent (agents/orphans.ts) delegates nothing either.
      if (err instanceof WarrantError && (err.code === 'agent_unauthenticated' || err.code === 'agent_suspended')) throw invalidRequest(`subject_token: ${err.detail ?? 'the agent key is not valid'}`);
      throw err;
    }
    // Fresh from the store: the key check's cache may be a few seconds behind another instance.
    const row = await deps.store.db.selectFrom('agents').select(['id', 'owner', 'status', 'expires_at']).where('id', '=', agent.id).executeTakeFirst();
    const now = deps.now();
    if (!row || row.status !== 'active' || (row.expires_at !== null && Number(row.expires_at) <= now)) throw invalidRequest('subject_token: the agent is revoked or expired');
    if ((await deps.store.owners.get(row.owner))?.status === 'offboarded') throw invalidRequest("subject_token: the agent's owner is offboarded");
    return { owner: row.owner, agentId: row.id, exp: row.expires_at === null ? undefined : Math.floor(Number(row.expires_at) / 1000), chain: [{ sub: row.id }] };
  }

  async function accessTokenSubject(token: string): Promise<Subject> {
    let claims: JWTPayload;
    try {
      claims = decodeJwt(token);
    } catch {
      throw invalidRequest('subject_token: not an access token Warrant issued');
    }
    const aud = Array.isArray(claims.aud) && claims.aud.length === 1 ? claims.aud[0] : claims.aud;
    if (typeof aud !== 'string') throw invalidRequest('subject_token: an access token for exactly one resource is required');
    let verified: Awaited<ReturnType<VerifyAccessToken>>;
    try {
      // The one verifier, for the token's own audience: signature, iss, typ, exp, agent and owner alive.
      verified = await deps.verifyAccessToken(token, { resource: aud });
    } catch (err) {
      if (err instanceof WarrantError && err.code === 'agent_unauthenticated') throw invalidRequest(`subject_token: ${err.detail ?? 'not valid'}`);
      throw err;
    }
    return {
      owner: verified.owner,
      agentId: verified.agentId,
      scopes: verified.scopes,
      exp: verified.expiresAt,
      chain: chainOf(claims.act) ?? [{ sub: verified.agentId, client_id: verified.clientId }],
      audience: aud,
      mayAct: claims.may_act,
    };
  }

  /** Every exchange asked, refused ones included, is recorded once (an RFC 8693 §2.2.2 error's code and description hold no token). */
  async function handle(ctx: KoaContextWithOIDC): Promise<void> {
    const seen: Seen = {};
    try {
      await exchange(ctx, seen);
    } catch (err) {
      const e = err as { error?: unknown; error_description?: unknown };
      if (deps.audit && typeof e.error === 'string') {
        const clientId = ctx.oidc.client!.clientId;
        await deps
          .audit({
            type: 'authz.token_exchange_refused',
            actor: seen.actorAgent ? `agent:${seen.actorAgent}` : `client:${clientId}`,
            ...(seen.subject ? { subject: `agent:${seen.subject.agentId}` } : {}),
            data: {
              client_id: clientId,
              error: e.error,
              ...(typeof e.error_description === 'string' ? { error_description: e.error_description.slice(0, 300) } : {}),
              ...(seen.resource ? { resource: seen.resource } : {}),
              ...(typeName(seen.subjectType) ? { subject_token_type: typeName(seen.subjectType) } : {}),
              ...(seen.subject ? { owner: seen.subject.owner } : {}),
            },
          })
          .catch((auditErr: Error) => deps.logger.error({ err: { message: auditErr.message } }, 'a refused token exchange could not be audited'));
      }
      throw err;
    }
  }

  async function exchange(ctx: KoaContextWithOIDC, seen: Seen): Promise<void> {
    const params = ctx.oidc.params as Record<string, unknown>;
    const client = ctx.oidc.client!;

    const subjectToken = single(params, 'subject_token', true);
    const subjectType = single(params, 'subject_token_type', true);
    if (single(params, 'actor_token') !== undefined || single(params, 'actor_token_type') !== undefined) {
      throw invalidRequest('actor_token is not supported: the authenticated client is the actor');
    }
    const requested = single(params, 'requested_token_type');
    if (requested !== undefined && requested !== tokenTypes.accessToken) throw invalidRequest(`requested_token_type: Warrant issues ${tokenTypes.accessToken} only`);
    if (subjectToken.length > MAX_SUBJECT_LENGTH) throw invalidRequest('subject_token is too long');
    seen.subjectType = subjectType;
    const info = deps.resources.resolve(targetOf(params));
    if (!info) throw new errors.InvalidTarget('Warrant issues no token for this resource');
    seen.resource = info.resource;

    let subject: Subject;
    if (subjectType === tokenTypes.agentKey) subject = await agentKeySubject(subjectToken);
    else if (subjectType === tokenTypes.accessToken) subject = await accessTokenSubject(subjectToken);
    else throw invalidRequest(`subject_token_type must be ${tokenTypes.agentKey} or ${tokenTypes.accessToken}`);
    seen.subject = subject;

    // The same resource or one under it, never another (RFC 8707 audiences only narrow).
    if (subject.audience !== undefined && info.resource !== subject.audience && !info.resource.startsWith(`${subject.audience.replace(/\/+$/, '')}/`)) {
      throw new errors.InvalidTarget('the subject token is for another resource: an exchange narrows, it never moves a token elsewhere');
    }

    // The actor: the authenticated client, which must be an agent of the subject's owner.
    const actorAgent = await deps.clientAgents.activeAgentOf(client.clientId, subject.owner);
    if (!actorAgent) throw new errors.UnauthorizedClient("the client is not an agent of the subject's owner: the owner must authorize it first");
    seen.actorAgent = actorAgent;
    const current = subject.chain[0]!;
    const sameActor = current.sub === actorAgent && (current.client_id === undefined || current.client_id === client.clientId);
    if (client.clientAuthMethod === 'none' && !sameActor) {
      throw new errors.UnauthorizedClient("a public client may only narrow a credential bound to its own agent; a sub-agent must authenticate (client_secret_*, private_key_jwt)");
    }
    if (subject.mayAct !== undefined) {
      const m = subject.mayAct as Record<string, unknown> | null;
      const ok = !!m && typeof m === 'object' && (m.sub !== undefined || m.client_id !== undefined) && (m.sub === undefined || m.sub === actorAgent) && (m.client_id === undefined || m.client_id === client.clientId);
      if (!ok) throw invalidRequest("subject_token: its may_act does not name this client");
    }
    const actor: Actor = { sub: actorAgent, client_id: client.clientId };
    const chain = sameActor ? [actor, ...subject.chain.slice(1)] : [actor, ...subject.chain];
    if (chain.length > MAX_ACTORS) throw invalidRequest(`subject_token: a delegation chain holds at most ${MAX_ACTORS} actors`);

    // Scopes: within the resource's, the subject's, and the client's registered `scope` if it has one.
    let allowed = info.scopes;
    if (subject.scopes) allowed = allowed.filter((s) => subject.scopes!.includes(s));
    const clientScope = typeof client.scope === 'string' ? client.scope.split(' ').filter(Boolean) : undefined;
    if (clientScope) allowed = allowed.filter((s) => clientScope.includes(s));
    const asked = single(params, 'scope')?.split(' ').filter(Boolean);
    const scopes = asked ? [...new Set(asked)] : allowed;
    const wider = scopes.filter((s) => !allowed.includes(s));
    if (wider.length) throw new errors.InvalidScope(`scope wider than the subject may have: ${wider.join(' ')} (at most: ${allowed.join(' ') || 'none'})`, wider.join(' '));
    if (!scopes.length) throw new errors.InvalidScope('the subject holds no scope of this resource', '');

    const nowSec = Math.floor(deps.now() / 1000);
    const exp = Math.min(nowSec + deps.ttlSeconds, subject.exp ?? Infinity);
    if (exp <= nowSec) throw invalidRequest('subject_token: it expires now');

    const { key, kid } = await signer();
    const jti = randomBytes(18).toString('base64url');
    const accessToken = await new SignJWT({ client_id: client.clientId, scope: scopes.join(' '), agent_id: subject.agentId, act: actClaim(chain) })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', ...(kid ? { kid } : {}) })
      .setIssuer(deps.issuer)
      .setSubject(subject.owner)
      .setAudience(info.resource)
      .setIssuedAt(nowSec)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(key);

    // Recorded before it is answered: a token Warrant cannot account for is not handed out.
    await deps.audit?.({
      type: 'authz.token_exchanged',
      actor: `agent:${actorAgent}`,
      subject: `agent:${subject.agentId}`,
      data: {
        owner: subject.owner,
        client_id: client.clientId,
        resource: info.resource,
        scopes,
        subject_token_type: typeName(subjectType),
        act: chain,
        jti,
        expires_at: new Date(exp * 1000).toISOString(),
      },
    });

    deps.logger.info({ client: client.clientId, agent: subject.agentId, actor: actorAgent, resource: info.resource, scope: scopes.join(' '), subject_type: subjectType }, 'authz token exchanged');
    ctx.body = { access_token: accessToken, issued_token_type: tokenTypes.accessToken, token_type: 'Bearer', expires_in: exp - nowSec, scope: scopes.join(' ') };
  }

  provider.registerGrantType(TOKEN_EXCHANGE_GRANT, (ctx) => handle(ctx as KoaContextWithOIDC), PARAMS, ['resource', 'audience']);

  // Any registered client may present the grant (dynamic registration and the admin API do not
  // list it): the subject token and the client being an agent of its owner decide, above.
  const allowed = provider.Client.prototype.grantTypeAllowed;
  provider.Client.prototype.grantTypeAllowed = function (this: InstanceType<typeof provider.Client>, type: string) {
    return type === TOKEN_EXCHANGE_GRANT || allowed.call(this, type);
  };
}
