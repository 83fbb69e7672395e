import { decodeJwt, type JWTPayload } from 'jose';
import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import { WarrantError } from '../errors/index.ts';
import { authzPaths } from './options.ts';
import type { VerifyAccessToken } from './verify.ts';

// RFC 7662 introspection of Warrant's own access tokens (RFC 9068 JWTs: every resource gets one).
// oidc-provider's introspection endpoint knows only the opaque tokens it stores and answers
// `400 unsupported_token_type` for any JWT. The request still goes through that endpoint as it is
// (body parsing, the caller's client authentication as it registered, duplicate and presence
// checks); when its refusal is that the token is a JWT, the answer is made here instead, from the
// one access-token verifier (verify.ts): signature, issuer, `typ`, expiry, and the token's agent,
// every agent of its `act` chain and their owner still active (read at most ~1 s old), so a revoked
// agent or an offboarded owner answers `active: false` within a second.
//
// Who learns what (RFC 7662 §4): only the token's own client (its `client_id`). Every resource
// server of Warrant's tokens is inside Warrant and verifies them itself, so no other client holds an
// audience; any other caller gets `{active: false}`, the same as for a token that is not valid.
// Refresh tokens (opaque) keep oidc-provider's path and its allowedPolicy (provider.ts).

export interface JwtIntrospectionDeps {
  verifyAccessToken: VerifyAccessToken;
  logger: Logger;
}

/** RFC 7662 §2.2, for one of Warrant's JWT access tokens. */
export interface JwtIntrospection {
  active: boolean;
  scope?: string;
  client_id?: string;
  sub?: string;
  aud?: string;
  iss?: string;
  exp?: number;
  iat?: number;
  jti?: string;
  token_type?: 'Bearer';
  /** RFC 8693 §4.1: who acts, for a delegated token. */
  act?: unknown;
  /** The agent the token's client is (or whose authority an exchanged token carries). */
  agent_id?: string;
}

/** oidc-provider's refusal of a request that names no client at all (shared/client_auth.js). */
const NO_CLIENT_AUTH = 'no client authentication mechanism provided';

const INACTIVE: JwtIntrospection = Object.freeze({ active: false });

/**
 * Answers RFC 7662 for a JWT `token` asked by the authenticated client `callerId`.
 * @see https://www.rfc-editor.org/rfc/rfc7662#section-2.2
 */
export async function introspectJwt(verifyAccessToken: VerifyAccessToken, token: string, callerId: string): Promise<JwtIntrospection> {
  let claims: JWTPayload;
  try {
    claims = decodeJwt(token);
  } catch {
    return INACTIVE;
  }
  // RFC 9068 §4: one audience; the verifier checks the token against it, signature first.
  const aud = Array.isArray(claims.aud) && claims.aud.length === 1 ? claims.aud[0] : claims.aud;
  if (typeof aud !== 'string') return INACTIVE;
  let clientId: string;
  try {
    ({ clientId } = await verifyAccessToken(token, { resource: aud }));
  } catch (err) {
    if (err instanceof WarrantError && err.code === 'agent_unauthenticated') return INACTIVE;
    throw err;
  }
  // RFC 7662 §4: the token's own client, nobody else.
  if (clientId !== callerId) return INACTIVE;
  // The claims are the issuer's: the signature held.
  const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  return {
    active: true,
    scope: str(claims.scope),
    client_id: clientId,
    sub: str(claims.sub),
    aud,
    iss: str(claims.iss),
    exp: claims.exp,
    iat: claims.iat,
    jti: str(claims.jti),
    token_type: 'Bearer',
    ...(claims.act !== undefined ? { act: claims.act } : {}),
    ...(str(claims.agent_id) ? { agent_id: str(claims.agent_id) } : {}),
  };
}

/** Makes `/oauth2/introspect` answer for Warrant's JWT access tokens once oidc-provider authenticated the caller. */
export function registerJwtIntrospection(provider: Provider, deps: JwtIntrospectionDeps): void {
  const path = authzPaths.routes.introspection;
  // Requests whose only fault, after client authentication, was a JWT token (reject_structured_tokens),
  // and requests with no client authentication at all.
  const structured = new WeakSet<object>();
  const anonymous = new WeakSet<object>();
  (provider as unknown as NodeJS.EventEmitter).on('introspection.error', (ctx: object, err: unknown) => {
    if (err instanceof errors.UnsupportedTokenType) structured.add(ctx);
    else if (err instanceof errors.InvalidRequest && err.error_description === NO_CLIENT_AUTH) anonymous.add(ctx);
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.method !== 'POST' || ctx.path !== path) return;
    if (anonymous.has(ctx)) {
      // RFC 7662 §2.1 requires the caller's authorization, and §2.3 answers its absence as RFC 6749
      // §5.2 does ("no client authentication included"): 401 invalid_client, not oidc-provider's 400.
      ctx.status = 401;
      ctx.body = { error: 'invalid_client', error_description: 'client authentication is required' };
      return;
    }
    if (!structured.has(ctx)) return;
    const { oidc } = ctx as unknown as KoaContextWithOIDC;
    const caller = oidc?.client?.clientId;
    const token = oidc?.params?.token;
    if (!caller || typeof token !== 'string') return;
    try {
      ctx.body = await introspectJwt(deps.verifyAccessToken, token, caller);
      ctx.status = 200;
    } catch (err) {
      deps.logger.error({ err: { message: (err as Error).message, name: (err as Error).name } }, 'introspection of an access token failed');
      ctx.body = { error: 'server_error' };
      ctx.status = 500;
    }
  });
}
