import { Agent } from 'undici';
import { createOAuthClient, type IdpGuard, type OAuthClient } from '../oauth/index.ts';
import { createWebhookTarget } from '../events/webhook-target.ts';
import { ADDRESS_REFUSED } from '../events/webhook-messages.ts';
import { PlaceholderError, endpointKeys, fillEndpoint, placeholderNames, resolveSecretRef, valueProblem, type Provider, type ProviderEnvironment } from '../providers/index.ts';
import { WarrantError, invalidRequest } from '../errors/index.ts';
import { apiHeadersOrProblem } from './api-headers.ts';

/**
 * Fills `{name}` placeholders of an endpoint URL from a connection's params, each checked against
 * the type its provider declares (providers/placeholders.ts). A value that got into the store
 * without that check (an older Warrant) is refused here, before anything is sent: `conflict`.
 */
export function fillTemplate(template: string, params: Record<string, string>, provider: Pick<Provider, 'id' | 'connection_params'>): string {
  try {
    return fillEndpoint(template, params, provider.connection_params ?? {});
  } catch (err) {
    if (!(err instanceof PlaceholderError)) throw err;
    throw new WarrantError('conflict', `the connection's param ${err.param} ${err.reason}; re-import or re-connect it`, { param: err.param });
  }
}

/**
 * Checks connection params where they enter Warrant (a connect session, the callback, a token
 * response, an import): a typed param must be what its type says; no param holds control
 * characters. `field` names the source in the problem (`params`, `query`, `token_response`).
 */
export function checkParams(provider: Provider, params: Record<string, unknown>, field = 'params', names?: Record<string, string>): void {
  for (const [name, value] of Object.entries(params)) {
    const spec = provider.connection_params?.[name];
    const problem = valueProblem(spec ?? {}, value);
    if (problem) throw invalidRequest(`${field}.${names?.[name] ?? name}`, problem);
  }
}

/**
 * The app credentials of one environment: its own `client_id` (and with it its own
 * `client_secret`, never the definition's: QuickBooks sandbox and production are different apps,
 * and one's secret must not be sent with the other's id), else the definition's `client_id` with
 * the environment's `client_secret` or the definition's. `${env:NAME}` is resolved here, at use.
 */
export function clientCredentialsFor(
  provider: Pick<Provider, 'client_id' | 'client_secret' | 'environments'> & Partial<Pick<Provider, 'client_private_key'>>,
  environment: string,
  env?: NodeJS.ProcessEnv,
): { clientId?: string; clientSecret?: string; clientPrivateKey?: string } {
  const own = provider.environments[environment];
  // A private key only where one is configured (private_key_jwt): most clients have none.
  const key = (ref: string | undefined) => {
    const pem = resolveSecretRef(ref, env);
    return pem ? { clientPrivateKey: pem } : {};
  };
  if (own?.client_id) return { clientId: resolveSecretRef(own.client_id, env), clientSecret: resolveSecretRef(own.client_secret, env), ...key(own.client_private_key) };
  return {
    clientId: resolveSecretRef(provider.client_id, env),
    clientSecret: resolveSecretRef(own?.client_secret ?? provider.client_secret, env),
    ...key(own?.client_private_key ?? provider.client_private_key),
  };
}

/**
 * The built-in `{client_id}` of a `revocation_url` (GitHub `/applications/{client_id}/grant`):
 * the app's client id, percent-encoded as one path segment. The schema allows it only in the path.
 */
function withClientId(template: string, clientId: string | undefined): string | undefined {
  if (!template.includes('{client_id}')) return template;
  // Without a client id there is nothing to revoke with: no revocation endpoint, as a disconnect will say.
  if (!clientId) return undefined;
  const authority = /^([a-z][a-z0-9+.-]*:\/\/[^/?#]*|\{[a-z][a-z0-9_]*\})/i.exec(template)?.[0] ?? '';
  return authority + template.slice(authority.length).replaceAll('{client_id}', encodeURIComponent(clientId));
}

/** The definition's `api_headers` filled from the connection, for a call outside the proxy (a revocation check): none when one cannot be filled. */
export function apiHeadersFor(provider: Pick<Provider, 'id' | 'api_headers' | 'connection_params'>, params: Record<string, string>): Record<string, string> {
  const headers = apiHeadersOrProblem(provider, params);
  return headers instanceof WarrantError ? {} : headers;
}

export function endpointsFor(provider: Provider, environment: string, params: Record<string, string>, clientId?: string): ProviderEnvironment {
  const env = provider.environments[environment];
  if (!env) throw new WarrantError('invalid_request', `environment: ${provider.id} has no environment ${environment}`, { field: 'environment' });
  // An API base may use a param the flow learns only at its end (Salesforce instance_url,
  // QuickBooks realmId): the OAuth client never calls it, so it stays unfilled until then.
  const fill = (v: string, api: boolean) => (api && placeholderNames(v).some((n) => params[n] === undefined) ? v : fillTemplate(v, params, provider));
  const out: ProviderEnvironment = { ...env };
  // App credentials are read by clientCredentialsFor, and a literal secret has no business in endpoints.
  delete out.client_id;
  delete out.client_secret;
  delete out.client_private_key;
  // The issuer is filled like an endpoint: it is compared with `iss` (RFC 9207), so a placeholder
  // in it (Okta `https://{okta_domain}`) must hold the connection's checked value.
  for (const key of [...endpointKeys, 'issuer'] as const) {
    const v = key === 'revocation_url' && env[key] !== undefined ? withClientId(env[key], clientId) : env[key];
    if (v !== undefined) out[key] = fill(v, key === 'api_base_url');
    else if (key === 'revocation_url') delete out.revocation_url;
  }
  if (env.api_hosts) {
    out.api_hosts = Object.fromEntries(Object.entries(env.api_hosts).map(([k, h]) => [k, { ...h, base_url: fill(h.base_url, true) }]));
  }
  return out;
}

/**
 * The SSRF guard of providers whose endpoints came from remote metadata (`endpoints_untrusted`):
 * the same address rules and connector as the MCP gateway's discovery fetch
 * (events/webhook-target.ts), WARRANT_MCP_ALLOWED_NETWORKS its allowance, bounded in time
 * (connect, headers, body); boundedFetch follows no redirect and caps the answer's size.
 */
export function createUntrustedIdpGuard(opts: { allowedNetworks: readonly string[]; timeoutMs: number }): IdpGuard & { close(): Promise<void> } {
  const target = createWebhookTarget({ allowedNetworks: opts.allowedNetworks });
  const dispatcher = new Agent({ connect: target.connector({ timeout: opts.timeoutMs }), headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs });
  return { dispatcher, refusedCode: ADDRESS_REFUSED, allowance: 'WARRANT_MCP_ALLOWED_NETWORKS', close: () => dispatcher.close() };
}

export interface ClientResolver {
  (provider: Provider, environment: string, params: Record<string, string>): OAuthClient;
}

/**
 * One OAuth client per (provider, environment, params). Client id and secret come from the
 * definition, per environment (`clientCredentialsFor`), and are never copied into the catalog.
 */
export function createClientResolver(opts: {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  /** Networks a provider with untrusted endpoints may reach although not public (WARRANT_MCP_ALLOWED_NETWORKS); none unless given. */
  untrustedAllowedNetworks?: readonly string[];
}): ClientResolver {
  const cache = new Map<string, OAuthClient>();
  // Made on first use: most deployments have no provider that needs it.
  let guard: IdpGuard | undefined;
  const guardFor = (provider: Provider) =>
    provider.endpoints_untrusted ? (guard ??= createUntrustedIdpGuard({ allowedNetworks: opts.untrustedAllowedNetworks ?? [], timeoutMs: opts.timeoutMs })) : undefined;
  return (provider, environment, params) => {
    const key = `${provider.id}\n${environment}\n${JSON.stringify(params)}`;
    let client = cache.get(key);
    // A definition replaced under the same id (an MCP server registered again with other
    // credentials, a reloaded catalog) gets a client of its own, never the old one's secret or key.
    if (!client || client.provider !== provider) {
      const { clientId, clientSecret, clientPrivateKey } = clientCredentialsFor(provider, environment, opts.env);
      if (!clientId && provider.auth !== 'api_key' && provider.auth !== 'basic') {
        throw new WarrantError('conflict', `provider ${provider.id} has no client_id configured for ${environment} (set it in the definition or its \${env:…} variable)`);
      }
      client = createOAuthClient({
        provider,
        endpoints: endpointsFor(provider, environment, params, clientId),
        clientId: clientId ?? '',
        clientSecret,
        clientPrivateKey,
        apiHeaders: apiHeadersFor(provider, params),
        timeoutMs: opts.timeoutMs,
        guard: guardFor(provider),
      });
      cache.set(key, client);
    }
    return client;
  };
}
