import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { notFound } from '../../errors/index.ts';
import { endpointKeys, type Provider, type ProviderEnvironment } from '../../providers/index.ts';
import type { RouteContext } from '../app.ts';
import { clientCredentialsFor } from '../../tokens/index.ts';

const providerSummary = z.object({
  id: z.string(),
  name: z.string().optional(),
  auth: z.string(),
  environments: z.array(z.string()),
  scopes: z.array(z.string()),
  refresh_token_rotation: z.boolean(),
  docs_url: z.string().optional(),
  client_configured: z
    .record(z.string(), z.boolean())
    .optional()
    .describe('per environment: a client id resolves (its `${env:…}` variable is set), so connections can be made there; api_key and basic providers need none'),
});

/** Per environment: can Warrant act as this provider's client there? (never the credentials themselves) */
function clientConfigured(p: Provider, env?: NodeJS.ProcessEnv): Record<string, boolean> {
  const needsNone = p.auth === 'api_key' || p.auth === 'basic';
  return Object.fromEntries(Object.keys(p.environments).map((name) => [name, needsNone || !!clientCredentialsFor(p, name, env).clientId]));
}

/** What the API shows of a definition: never the client secret, not even its reference. */
export function summarize(p: Provider, env?: NodeJS.ProcessEnv): z.infer<typeof providerSummary> {
  return {
    id: p.id,
    name: p.name,
    auth: p.auth,
    environments: Object.keys(p.environments),
    scopes: Object.keys(p.scopes),
    refresh_token_rotation: p.refresh_token_rotation,
    docs_url: p.docs_url,
    client_configured: clientConfigured(p, env),
  };
}

/** The URLs of an environment; its client id and secret (references or not) are never shown. */
function endpointUrls(env: ProviderEnvironment): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const key of [...endpointKeys, 'issuer'] as const) if (env[key] !== undefined) out[key] = env[key];
  return out;
}

const providerDetail = providerSummary.extend({
  token_auth_method: z.string(),
  endpoints: z.record(z.string(), z.record(z.string(), z.string().optional())),
  /** Further API hosts per environment: host key → base URL. */
  api_hosts: z.record(z.string(), z.record(z.string(), z.string())).optional(),
  token_lifetime: z.number().optional(),
  /** Seconds the previous refresh token still works after a rotation (Xero 30 min, Atlassian 10 min). */
  refresh_token_grace_period: z.number().optional(),
  /** The IdP lets a refresh token be used again (Microsoft). */
  refresh_token_reusable: z.boolean().optional(),
  /** Absolute and idle lifetimes of a refresh token, seconds, where documented. */
  refresh_token_lifetime: z.number().optional(),
  refresh_token_idle_timeout: z.number().optional(),
  default_scopes: z.array(z.string()).optional(),
  scope_rules: z.record(z.string(), z.array(z.object({ method: z.union([z.string(), z.array(z.string())]), path: z.string() }))),
});

export async function providerRoutes(app: FastifyInstance, ctx: RouteContext & { catalog: Map<string, Provider>; env?: NodeJS.ProcessEnv }) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.addHook('onRequest', ctx.requireAdmin);

  r.get(
    '/v1/providers',
    {
      schema: {
        tags: ['providers'],
        security: [{ admin: [] }],
        summary: 'List providers',
        description: 'The catalog: built-in providers merged with WARRANT_PROVIDERS, each with its environments, scopes, and whether a client is configured per environment. Never a client secret.',
        response: { 200: z.object({ providers: z.array(providerSummary) }) },
      },
    },
    async () => ({ providers: [...ctx.catalog.values()].map((p) => summarize(p, ctx.env)) }),
  );

  r.get(
    '/v1/providers/:id',
    {
      schema: {
        tags: ['providers'],
        security: [{ admin: [] }],
        summary: 'Read a provider',
        description:
          'One provider definition: endpoints per environment, token auth method, lifetimes and refresh-token quirks (rotation, grace period, reuse), ' +
          'default scopes, and the method/path rules each scope allows through the proxy. Never the client id or secret.',
        problems: ['not_found'],
        params: z.object({ id: z.string().regex(/^[a-z0-9-]+$/) }),
        response: { 200: providerDetail },
      },
    },
    async (req) => {
      const p = ctx.catalog.get(req.params.id);
      if (!p) throw notFound(`provider ${req.params.id}`);
      return {
        ...summarize(p, ctx.env),
        token_auth_method: p.token_auth_method,
        endpoints: Object.fromEntries(Object.entries(p.environments).map(([name, env]) => [name, endpointUrls(env)])),
        api_hosts: Object.fromEntries(
          Object.entries(p.environments).map(([name, env]) => [name, Object.fromEntries(Object.entries(env.api_hosts ?? {}).map(([k, h]) => [k, h.base_url]))]),
        ),
        token_lifetime: p.token_lifetime,
        refresh_token_grace_period: p.refresh_token_grace_period,
        refresh_token_reusable: p.refresh_token_reusable,
        refresh_token_lifetime: p.refresh_token_lifetime,
        refresh_token_idle_timeout: p.refresh_token_idle_timeout,
        default_scopes: p.default_scopes,
        scope_rules: p.scopes,
      };
    },
  );
}
