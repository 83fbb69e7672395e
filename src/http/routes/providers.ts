import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { notFound } from '../../errors/index.ts';
import { endpointKeys, type Provider, type ProviderEnvironment } from '../../providers/index.ts';
import type { RouteContext } from '../app.ts';

const providerSummary = z.object({
  id: z.string(),
  name: z.string().optional(),
  auth: z.string(),
  environments: z.array(z.string()),
  scopes: z.array(z.string()),
  refresh_token_rotation: z.boolean(),
  docs_url: z.string().optional(),
});

/** What the API shows of a definition: never the client secret, not even its reference. */
export function summarize(p: Provider): z.infer<typeof providerSummary> {
  return {
    id: p.id,
    name: p.name,
    auth: p.auth,
    environments: Object.keys(p.environments),
    scopes: Object.keys(p.scopes),
    refresh_token_rotation: p.refresh_token_rotation,
    docs_url: p.docs_url,
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
  scope_rules: z.record(z.string(), z.array(z.object({ method: z.union([z.string(), z.array(z.string())]), path: z.string() }))),
});

export async function providerRoutes(app: FastifyInstance, ctx: RouteContext & { catalog: Map<string, Provider> }) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.addHook('onRequest', ctx.requireAdmin);

  r.get(
    '/v1/providers',
    { schema: { tags: ['providers'], security: [{ admin: [] }], response: { 200: z.object({ providers: z.array(providerSummary) }) } } },
    async () => ({ providers: [...ctx.catalog.values()].map(summarize) }),
  );

  r.get(
    '/v1/providers/:id',
    {
      schema: {
        tags: ['providers'],
        security: [{ admin: [] }],
        params: z.object({ id: z.string().regex(/^[a-z0-9-]+$/) }),
        response: { 200: providerDetail },
      },
    },
    async (req) => {
      const p = ctx.catalog.get(req.params.id);
      if (!p) throw notFound(`provider ${req.params.id}`);
      return {
        ...summarize(p),
        token_auth_method: p.token_auth_method,
        endpoints: Object.fromEntries(Object.entries(p.environments).map(([name, env]) => [name, endpointUrls(env)])),
        api_hosts: Object.fromEntries(
          Object.entries(p.environments).map(([name, env]) => [name, Object.fromEntries(Object.entries(env.api_hosts ?? {}).map(([k, h]) => [k, h.base_url]))]),
        ),
        token_lifetime: p.token_lifetime,
        scope_rules: p.scopes,
      };
    },
  );
}
