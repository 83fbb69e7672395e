import { createOAuthClient, OAuthCallError } from '../oauth/index.ts';
import type { Provider } from '../providers/index.ts';
import type { ClientCredentials } from './credentials.ts';
import { DOCTOR_TIMEOUT_MS } from './http.ts';
import { error, ok, warn, type Finding } from './types.ts';

/** Plainly not a refresh token any IdP issued: only the client authentication can succeed. */
export const PROBE_REFRESH_TOKEN = 'warrant-doctor-probe-not-a-real-refresh-token';

/**
 * Does this environment's token endpoint know the client? A refresh_token grant (RFC 6749 §6)
 * with a fake refresh token and the environment's client authentication: `invalid_grant` means
 * the client authenticated and only the token was refused; `invalid_client` or
 * `unauthorized_client` (RFC 6749 §5.2) means this IdP does not know the client, typically the
 * app of another environment. Nothing is issued either way.
 */
export async function probeClient(provider: Provider, envName: string, credentials: ClientCredentials): Promise<Finding> {
  const subject = `${provider.id}/${envName}`;
  const env = provider.environments[envName]!;
  const tokenUrl = env.token_url;
  const clientField = env.client_id ? `environments.${envName}.client_id/client_secret` : 'client_id/client_secret';
  if (!tokenUrl) return ok('client', subject, 'no token_url: nothing to probe');
  if (/\{[a-z_][a-z0-9_]*\}/.test(tokenUrl)) return ok('client', subject, `not probed: token_url depends on a connection param (${tokenUrl})`);
  if (provider.token_auth_method === 'private_key_jwt' || provider.auth === 'jwt_bearer') return ok('client', subject, 'not probed: the client authenticates with a key per connection');
  // The environment's own credential references are not endpoints (tokens/clients.ts drops them too).
  const { client_id: _id, client_secret: _secret, ...endpoints } = env;
  const client = createOAuthClient({ provider, endpoints, clientId: credentials.clientId, clientSecret: credentials.clientSecret, timeoutMs: DOCTOR_TIMEOUT_MS });
  try {
    await client.refresh(PROBE_REFRESH_TOKEN);
    return warn('client', subject, `${tokenUrl} accepted a fake refresh token for client ${credentials.clientId}`, 'check that token_url is the IdP\'s token endpoint');
  } catch (err) {
    if (!(err instanceof OAuthCallError)) throw err;
    const said = `${err.status ?? 'no answer'}${err.error ? ` ${err.error}` : ''}`;
    if (err.error === 'invalid_grant') return ok('client', subject, `${tokenUrl} knows client ${credentials.clientId} (fake refresh token refused with invalid_grant)`);
    if (err.error === 'invalid_client' || err.error === 'unauthorized_client' || err.status === 401) {
      return error(
        'client',
        subject,
        `${tokenUrl} does not know client ${credentials.clientId} (${said}): client of another environment?`,
        `set ${clientField} to the app registered with this environment's IdP (or point the endpoints at the environment the client belongs to)`,
      );
    }
    if (err.error === 'timeout' || err.error === 'network_error') {
      return error('reachability', subject, `${tokenUrl}: ${err.message}`, 'check the URL, DNS, TLS and any outbound proxy or firewall');
    }
    return warn('client', subject, `${tokenUrl} answered a fake refresh token with ${said}, which says nothing about the client`, 'check token_url and token_auth_method against the provider\'s documentation');
  }
}
