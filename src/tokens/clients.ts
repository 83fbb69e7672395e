import { createOAuthClient, type OAuthClient } from '../oauth/index.ts';
import { PlaceholderError, endpointKeys, fillEndpoint, placeholderNames, resolveSecretRef, valueProblem, type Provider, type ProviderEnvironment } from '../providers/index.ts';
import { WarrantError, invalidRequest } from '../errors/index.ts';

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

export function endpointsFor(provider: Provider, environment: string, params: Record<string, string>): ProviderEnvironment {
  const env = provider.environments[environment];
  if (!env) throw new WarrantError('invalid_request', `environment: ${provider.id} has no environment ${environment}`, { field: 'environment' });
  // An API base may use a param the flow learns only at its end (Salesforce instance_url,
  // QuickBooks realmId): the OAuth client never calls it, so it stays unfilled until then.
  const fill = (v: string, api: boolean) => (api && placeholderNames(v).some((n) => params[n] === undefined) ? v : fillTemplate(v, params, provider));
  const out: ProviderEnvironment = { ...env };
  // The issuer is filled like an endpoint: it is compared with `iss` (RFC 9207), so a placeholder
  // in it (Okta `https://{okta_domain}`) must hold the connection's checked value.
  for (const key of [...endpointKeys, 'issuer'] as const) {
    const v = env[key];
    if (v !== undefined) out[key] = fill(v, key === 'api_base_url');
  }
  if (env.api_hosts) {
    out.api_hosts = Object.fromEntries(Object.entries(env.api_hosts).map(([k, h]) => [k, { ...h, base_url: fill(h.base_url, true) }]));
  }
  return out;
}

export interface ClientResolver {
  (provider: Provider, environment: string, params: Record<string, string>): OAuthClient;
}

/**
 * One OAuth client per (provider, environment, params). Client id and secret come from the
 * definition (`${env:NAME}` resolved here, at use) and are never copied into the catalog.
 */
export function createClientResolver(opts: { timeoutMs: number; env?: NodeJS.ProcessEnv }): ClientResolver {
  const cache = new Map<string, OAuthClient>();
  return (provider, environment, params) => {
    const key = `${provider.id}\n${environment}\n${JSON.stringify(params)}`;
    let client = cache.get(key);
    if (!client) {
      const clientId = resolveSecretRef(provider.client_id, opts.env);
      if (!clientId && provider.auth !== 'api_key' && provider.auth !== 'basic') {
        throw new WarrantError('conflict', `provider ${provider.id} has no client_id configured (set it in the definition or its \${env:…} variable)`);
      }
      client = createOAuthClient({
        provider,
        endpoints: endpointsFor(provider, environment, params),
        clientId: clientId ?? '',
        clientSecret: resolveSecretRef(provider.client_secret, opts.env),
        timeoutMs: opts.timeoutMs,
      });
      cache.set(key, client);
    }
    return client;
  };
}
