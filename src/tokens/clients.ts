import { createOAuthClient, type OAuthClient } from '../oauth/index.ts';
import { resolveSecretRef, type Provider, type ProviderEnvironment } from '../providers/index.ts';
import { WarrantError } from '../errors/index.ts';

/** Fills `{name}` placeholders from the connection's params; an unknown one is a config error. */
export function fillTemplate(template: string, params: Record<string, string>): string {
  return template.replace(/\{([a-z][a-z0-9_]*)\}/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined) throw new WarrantError('conflict', `the connection has no value for {${name}}`);
    return value;
  });
}

export function endpointsFor(provider: Provider, environment: string, params: Record<string, string>): ProviderEnvironment {
  const env = provider.environments[environment];
  if (!env) throw new WarrantError('invalid_request', `environment: ${provider.id} has no environment ${environment}`, { field: 'environment' });
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) out[k] = v === undefined ? undefined : fillTemplate(v, params);
  return out as ProviderEnvironment;
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
