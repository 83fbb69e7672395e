import { randomBytes } from 'node:crypto';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';

// RFC 7591 dynamic registration: what Warrant refuses beyond oidc-provider's own checks (which
// already refuse fragments in redirect URIs, http on a native client's non-loopback host, response
// types other than `code`). Called as the registration's idFactory, on the parsed body; answers
// the new client_id or throws `invalid_client_metadata` / `invalid_redirect_uri` (RFC 7591 §3.2.2).

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
export const allowedGrants: ReadonlySet<string> = new Set(['authorization_code', 'refresh_token', DEVICE_GRANT]);
const allowedAuth = new Set(['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt']);

export function checkRegistration(ctx: KoaContextWithOIDC): string {
  const body = (ctx.oidc.body ?? {}) as Record<string, unknown>;
  // Warrant's rule, not the RFC's default: a client says whether it is a web or a native app, so
  // its redirect URIs are checked for what it is (RFC 8252 §7 for native apps).
  if (body.application_type !== 'web' && body.application_type !== 'native') {
    throw new errors.InvalidClientMetadata('application_type is required: "web" or "native"');
  }
  const grants = body.grant_types === undefined ? ['authorization_code'] : body.grant_types;
  if (!Array.isArray(grants) || grants.some((g) => typeof g !== 'string' || !allowedGrants.has(g))) {
    throw new errors.InvalidClientMetadata(`grant_types may hold only authorization_code, refresh_token and ${DEVICE_GRANT}`);
  }
  // A device-flow-only client (RFC 8628) has no redirect URI and no response type.
  if (!(grants as string[]).includes('authorization_code')) {
    if (body.response_types === undefined) body.response_types = [];
    if (body.redirect_uris === undefined) body.redirect_uris = [];
    if (!Array.isArray(body.redirect_uris) || body.redirect_uris.length) throw new errors.InvalidRedirectUri('redirect_uris must be empty without the authorization_code grant');
    return `wcl_${randomBytes(16).toString('base64url')}`;
  }
  const auth = body.token_endpoint_auth_method;
  if (auth !== undefined && (typeof auth !== 'string' || !allowedAuth.has(auth))) {
    throw new errors.InvalidClientMetadata('token_endpoint_auth_method must be none, client_secret_basic, client_secret_post or private_key_jwt');
  }
  const problem = redirectUriProblem(body.redirect_uris, body.application_type as 'web' | 'native');
  if (problem) throw new errors.InvalidRedirectUri(problem);
  return `wcl_${randomBytes(16).toString('base64url')}`;
}

/** What is wrong with the redirect URIs of a client that receives codes (registered here, or a metadata document's: cimd.ts), if anything. */
export function redirectUriProblem(uris: unknown, applicationType: 'web' | 'native'): string | undefined {
  if (!Array.isArray(uris) || uris.length === 0 || uris.some((u) => typeof u !== 'string')) {
    return 'redirect_uris is required: the exact URIs the client receives codes at';
  }
  for (const u of uris as string[]) {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      return 'redirect_uris must hold absolute URIs';
    }
    // RFC 9700 §4.1.1: a code sent over plain HTTP to another machine can be read on the way.
    if (applicationType === 'web' && url.protocol === 'http:' && !LOOPBACK.has(url.hostname)) {
      return "a web client's redirect_uris must use https (http only on a loopback host)";
    }
    if (url.username || url.password) return 'redirect_uris must not carry credentials';
  }
  return undefined;
}
