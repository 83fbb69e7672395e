import { createHash, randomBytes } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { EnterpriseIdp } from '../config/index.ts';
import type { AuditInput } from '../events/index.ts';
import type { Store } from '../store/index.ts';
import type { ClientAgents } from './agents.ts';
import { accessTokenSigner, type AuthzKeys } from './keys.ts';
import { authzDefaults } from './options.ts';
import type { Resources } from './resources.ts';
import { authzTables } from './tables.ts';

// Enterprise-managed authorization (MCP SEP-990): the Identity Assertion JWT Authorization Grant
// (draft-ietf-oauth-identity-assertion-authz-grant). An organisation's IdP issues an ID-JAG
// (`typ: oauth-id-jag+jwt`) to a client by token exchange at the IdP; the client presents it here
// as an RFC 7523 §2.1 grant (`grant_type=…:jwt-bearer`, `assertion=`) and gets one of Warrant's
// access tokens with no consent screen: the org admin approved the client once, at the IdP. The
// user it names must be a Warrant owner (active); the client becomes, or stays, an agent of that
// owner, so revoking the agent or offboarding the owner ends it like any other. No refresh token:
// the client asks the IdP for a new ID-JAG, so the IdP's policy is applied at every renewal.

export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
export const ID_JAG_TYP = 'oauth-id-jag+jwt';
/** Asymmetric algorithms only: a shared secret with an IdP would let Warrant mint its assertions. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const REPLAY_KIND = 'IdJagJti';

export interface IdJagDeps {
  issuer: string;
  idps: readonly EnterpriseIdp[];
  keys: AuthzKeys;
  resources: Pick<Resources, 'resolve'>;
  clientAgents: Pick<ClientAgents, 'activeAgentOf' | 'ensure'>;
  store: Pick<Store, 'db' | 'owners'>;
  /** Appends (and publishes) one audit entry. */
  audit: (entry: AuditInput) => Promise<void>;
  logger: Logger;
  now: () => number;
  /** Lifetime of the access token issued, in seconds. */
  ttlSeconds: number;
  /** Deadline of one fetch of an IdP's JWKS, in ms (WARRANT_HTTP_TIMEOUT_MS). */
  jwksTimeoutMs: number;
}

/** `invalid_grant` (RFC 6749 §5.2) with a description naming what failed; never the assertion. */
export const invalidGrant = (description: string) => new errors.CustomOIDCProviderError('invalid_grant', description);

/** The claims of an ID-JAG this grant reads, once their types are checked. */
export interface IdJagClaims {
  iss: string;
  sub: string;
  clientId: string;
  jti: string;
  iat: number;
  exp: number;
  /** The `resource` claim: one URI or several. */
  resource?: string[];
  scope?: string[];
  email?: string;
}

const words = (s: string) => [...new Set(s.split(' ').filter(Boolean))];

/** Checks the claims' types (after the signature and the registered claims were verified). */
export function parseIdJagClaims(p: JWTPayload): IdJagClaims {
  const str = (name: string, max = 2048): string | undefined => {
    const v = p[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || !v || v.length > max) throw invalidGrant(`the assertion's ${name} claim is malformed`);
    return v;
  };
  const need = (name: string, max?: number): string => {
    const v = str(name, max);
    if (v === undefined) throw invalidGrant(`the assertion has no ${name} claim`);
    return v;
  };
  let resource: string[] | undefined;
  if (p.resource !== undefined) {
    const list = ([] as unknown[]).concat(p.resource);
    if (!list.length || list.some((r) => typeof r !== 'string' || !r)) throw invalidGrant("the assertion's resource claim is malformed");
    resource = list as string[];
  }
  const scope = str('scope', 4096);
  const email = str('email', 320);
  if (typeof p.iat !== 'number' || typeof p.exp !== 'number') throw invalidGrant('the assertion needs numeric iat and exp claims');
  return { iss: need('iss'), sub: need('sub', 255), clientId: need('client_id', 256), jti: need('jti', 256), iat: p.iat, exp: p.exp, ...(resource ? { resource } : {}), ...(scope !== undefined ? { scope: words(scope) } : {}), ...(email !== undefined ? { email } : {}) };
}

/**
 * The one resource the token is for (RFC 8707: one audience): the request's `resource`, which
 * must be one the assertion names if it names any; or, with none asked, the assertion's only one.
 */
export function targetOf(asked: unknown, claim: string[] | undefined): string {
  const values = asked === undefined ? [] : ([] as unknown[]).concat(asked);
  if (values.some((v) => typeof v !== 'string' || !v)) throw new errors.InvalidRequest('resource must be an absolute URI');
  const unique = [...new Set(values as string[])];
  if (unique.length > 1) throw new errors.InvalidTarget('exactly one resource: a token serves one audience');
  if (unique.length === 1) {
    if (claim && !claim.includes(unique[0]!)) throw new errors.InvalidTarget('the assertion does not grant this resource (its resource claim names others)');
    return unique[0]!;
  }
  if (claim?.length === 1) return claim[0]!;
  throw new errors.InvalidRequest(claim ? 'resource is required: the assertion names several' : 'resource is required: the one Warrant resource the token is for (RFC 8707)');
}

/**
 * The scopes issued: the resource's, within the assertion's `scope` (if it has one) and the
 * client's registered `scope` (if it has one), and within `scope` asked (if any). A request wider
 * than that is trimmed to it, never widened (the IdP decided what the client may have).
 */
export function grantedScopes(input: { asked?: string[]; assertion?: string[]; resource: readonly string[]; client?: string[] }): string[] {
  return input.resource.filter(
    (s, i) => input.resource.indexOf(s) === i && (!input.assertion || input.assertion.includes(s)) && (!input.client || input.client.includes(s)) && (!input.asked || input.asked.includes(s)),
  );
}

const idOf = (iss: string, jti: string) => createHash('sha256').update(`${iss}\n${jti}`).digest('base64url');

/** Registers the grant; every registered client may present it, the rules below decide. */
export function registerIdJag(provider: Provider, deps: IdJagDeps): void {
  const limits = authzDefaults.idJag;
  const signer = accessTokenSigner(deps.keys);
  const db = authzTables(deps.store.db);
  const idps = new Map(deps.idps.map((idp) => [idp.issuer, { idp, jwks: createRemoteJWKSet(new URL(idp.jwksUri), { timeoutDuration: deps.jwksTimeoutMs }) }]));

  async function verify(assertion: string): Promise<{ idp: EnterpriseIdp; claims: IdJagClaims }> {
    let typ: unknown;
    let iss: unknown;
    try {
      typ = decodeProtectedHeader(assertion).typ;
      iss = decodeJwt(assertion).iss;
    } catch {
      throw invalidGrant('the assertion is not a JWT');
    }
    // The draft's explicit typing (RFC 8725 §3.11): no ID token or other JWT passes for an ID-JAG.
    if (typeof typ !== 'string' || typ.toLowerCase().replace(/^application\//, '') !== ID_JAG_TYP) throw invalidGrant(`the assertion is not an ID-JAG: its typ must be ${ID_JAG_TYP}`);
    const known = typeof iss === 'string' ? idps.get(iss) : undefined;
    if (!known) throw invalidGrant("the assertion's issuer is not an enterprise IdP Warrant trusts (WARRANT_ENTERPRISE_IDPS)");
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(assertion, known.jwks, {
        issuer: known.idp.issuer,
        typ: ID_JAG_TYP,
        algorithms: ALGORITHMS,
        clockTolerance: limits.clockSkewSeconds,
        currentDate: new Date(deps.now()),
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw invalidGrant('the assertion expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw invalidGrant(`the assertion's ${err.claim} claim is not valid here`);
      if (err instanceof joseErrors.JOSEAlgNotAllowed) throw invalidGrant("the assertion's alg is not allowed (an asymmetric signature is required)");
      if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWSSignatureVerificationFailed || err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) {
        throw invalidGrant("the assertion's signature does not verify with its IdP's keys");
      }
      // The IdP's JWKS could not be had (timeout, refused, not a JWKS): nothing the client did.
      deps.logger.warn({ idp: known.idp.issuer, err: { name: (err as Error).name, message: (err as Error).message } }, 'enterprise IdP keys unavailable');
      const unavailable = new errors.TemporarilyUnavailable("the enterprise IdP's keys cannot be fetched now; retry later");
      Object.assign(unavailable, { status: 503, statusCode: 503 });
      throw unavailable;
    }
    // The draft and RFC 7523 §3: the audience is this authorization server, by its issuer identifier, alone.
    const aud = Array.isArray(payload.aud) && payload.aud.length === 1 ? payload.aud[0] : payload.aud;
    if (aud !== deps.issuer) throw invalidGrant('the assertion is not for this authorization server (aud must be its issuer)');
    const claims = parseIdJagClaims(payload);
    const nowSec = Math.floor(deps.now() / 1000);
    if (claims.iat > nowSec + limits.clockSkewSeconds) throw invalidGrant("the assertion's iat is in the future");
    if (claims.exp - claims.iat > limits.maxLifetimeSeconds) throw invalidGrant(`the assertion lives longer than ${limits.maxLifetimeSeconds} s (exp - iat)`);
    return { idp: known.idp, claims };
  }

  /** RFC 7523 §3 item 7: each assertion once, across every instance (a primary key in the store). */
  async function consume(claims: IdJagClaims): Promise<void> {
    const now = deps.now();
    const inserted = await db
      .insertInto('authz_models')
      .values({ kind: REPLAY_KIND, key: idOf(claims.iss, claims.jti), grant_id: null, uid: null, user_code: null, generation: null, expires_at: (claims.exp + limits.clockSkewSeconds) * 1000, consumed_at: now, created_at: now })
      .onConflict((oc) => oc.columns(['kind', 'key']).doNothing())
      .returning('key')
      .executeTakeFirst();
    if (!inserted) throw invalidGrant('the assertion was already used (its jti is single use): ask the IdP for a new one');
  }

  async function handle(ctx: KoaContextWithOIDC): Promise<void> {
    const params = ctx.oidc.params as Record<string, unknown>;
    const client = ctx.oidc.client!;
    // The ID-JAG is a bearer credential: only a client that proves who it is may present one.
    if (client.clientAuthMethod === 'none') {
      throw new errors.InvalidClient('a public client cannot present an ID-JAG: authenticate the client (client_secret_basic, client_secret_post or private_key_jwt)');
    }
    const assertion = params.assertion;
    if (assertion === undefined || assertion === '') throw new errors.InvalidRequest('assertion is required: the ID-JAG');
    if (typeof assertion !== 'string') throw new errors.InvalidRequest('assertion must be given once');
    if (assertion.length > limits.maxAssertionLength) throw new errors.InvalidRequest('assertion is too long');
    if (params.scope !== undefined && typeof params.scope !== 'string') throw new errors.InvalidRequest('scope must be given once');

    const { idp, claims } = await verify(assertion);
    if (claims.clientId !== client.clientId) throw invalidGrant('the assertion was issued to another client (client_id)');
    if (idp.clients && !idp.clients.includes(client.clientId)) throw invalidGrant('this enterprise IdP may not grant to this client');

    const info = deps.resources.resolve(targetOf(params.resource, claims.resource));
    if (!info) throw new errors.InvalidTarget('Warrant issues no token for this resource');
    const scopes = grantedScopes({
      asked: typeof params.scope === 'string' ? words(params.scope) : undefined,
      assertion: claims.scope,
      resource: info.scopes,
      client: typeof client.scope === 'string' ? words(client.scope) : undefined,
    });
    if (!scopes.length) throw new errors.InvalidScope(`no scope of this resource is both asked and granted (the resource's: ${info.scopes.join(' ')})`, '');

    const ownerId = idp.ownerClaim === 'email' ? claims.email : claims.sub;
    if (!ownerId) throw invalidGrant(`the assertion has no ${idp.ownerClaim} claim naming the Warrant owner`);
    const owner = await deps.store.owners.get(ownerId);
    if (!owner) throw invalidGrant(`the assertion's user (its ${idp.ownerClaim}) is not a Warrant owner`);
    if (owner.status !== 'active') throw invalidGrant("the assertion's user is offboarded");

    await consume(claims);
    // No consent screen: the org admin approved the client at the IdP. The client becomes an agent
    // of the owner (audited `agent.created` by the agent service) or stays the one it is.
    const existing = await deps.clientAgents.activeAgentOf(client.clientId, ownerId);
    const agentId = existing ?? (await deps.clientAgents.ensure({ clientId: client.clientId, name: client.clientName }, ownerId));

    const nowSec = Math.floor(deps.now() / 1000);
    const exp = nowSec + deps.ttlSeconds;
    const { key, kid } = await signer();
    // RFC 9068: the same shape as every other Warrant access token (verify.ts accepts it).
    const accessToken = await new SignJWT({ client_id: client.clientId, scope: scopes.join(' '), agent_id: agentId })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', ...(kid ? { kid } : {}) })
      .setIssuer(deps.issuer)
      .setSubject(ownerId)
      .setAudience(info.resource)
      .setIssuedAt(nowSec)
      .setExpirationTime(exp)
      .setJti(randomBytes(18).toString('base64url'))
      .sign(key);

    await deps.audit({
      type: 'authz.enterprise_grant',
      actor: `idp:${idp.issuer}`,
      subject: `agent:${agentId}`,
      data: { client_id: client.clientId, owner: ownerId, agent: agentId, agent_created: !existing, idp: idp.issuer, resource: info.resource, scope: scopes.join(' ') },
    });
    deps.logger.info({ client: client.clientId, agent: agentId, idp: idp.issuer, resource: info.resource, scope: scopes.join(' ') }, 'authz enterprise grant');
    ctx.body = { access_token: accessToken, token_type: 'Bearer', expires_in: exp - nowSec, scope: scopes.join(' ') };
  }

  provider.registerGrantType(JWT_BEARER_GRANT, (ctx) => handle(ctx as KoaContextWithOIDC), ['assertion', 'scope', 'resource'], ['resource']);

  // Any registered client may present the grant (registration does not list it): the IdP names
  // the client in the assertion, and WARRANT_ENTERPRISE_IDPS may restrict the clients per IdP.
  const allowed = provider.Client.prototype.grantTypeAllowed;
  provider.Client.prototype.grantTypeAllowed = function (this: InstanceType<typeof provider.Client>, type: string) {
    return type === JWT_BEARER_GRANT || allowed.call(this, type);
  };
}
