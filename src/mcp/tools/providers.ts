import { z } from 'zod';
import { notFound } from '../../errors/index.ts';
import type { Provider } from '../../providers/index.ts';
import { MCP_SCOPES } from '../caller.ts';
import { defineTool } from '../tool-kit.ts';

// provider_detail: what an agent should know about a provider before calling it or asking for a
// scope. Built field by field from the definition (never spread): no client id or secret, not
// even their references, no endpoint a credential is sent to.

const rule = z.object({
  method: z.union([z.string(), z.array(z.string())]),
  path: z.string(),
  host: z.string().optional(),
  query: z.unknown().optional(),
});

export function providerTool(deps: { catalog: Map<string, Provider> }) {
  return defineTool({
    name: 'provider_detail',
    title: 'About a provider',
    description:
      'Describes an API provider Warrant knows (the `provider` of a connection): how it authenticates, how long its tokens live and whether they rotate, ' +
      'its scopes with the methods and paths each one allows (a call is allowed when one of the agent\'s scopes has a matching rule), and quirks worth knowing (notes, sources). ' +
      'Use it to choose the scope to ask for with request_access, or to understand a policy_denied answer.',
    scope: MCP_SCOPES.read,
    input: z.strictObject({ provider: z.string().regex(/^[a-z0-9-]{1,64}$/, { message: 'is a provider id (lower-case letters, digits and "-")' }) }),
    output: z.object({
      id: z.string(),
      name: z.string().nullable(),
      docs_url: z.string().nullable(),
      auth: z.string().describe('oauth2, client_credentials, jwt_bearer, api_key or basic'),
      environments: z.array(z.string()),
      token_lifetime_seconds: z.number().nullable().describe('access-token lifetime when the IdP does not say; Warrant refreshes ahead of expiry'),
      rotation: z.object({
        refresh_token_rotation: z.boolean(),
        grace_period_seconds: z.number().nullable(),
        reusable: z.boolean(),
        refresh_token_lifetime_seconds: z.number().nullable(),
        refresh_token_idle_timeout_seconds: z.number().nullable(),
      }),
      default_scopes: z.array(z.string()),
      scopes: z.record(z.string(), z.array(rule)).describe('scope → the requests it allows'),
      notes: z.string().nullable(),
      sources: z.record(z.string(), z.string()),
    }),
    annotations: { readOnlyHint: true, openWorldHint: false },
    async run(args) {
      const p = deps.catalog.get(args.provider);
      if (!p) throw notFound(`provider ${args.provider}`);
      return {
        id: p.id,
        name: p.name ?? null,
        docs_url: p.docs_url ?? null,
        auth: p.auth,
        environments: Object.keys(p.environments),
        token_lifetime_seconds: p.token_lifetime ?? null,
        rotation: {
          refresh_token_rotation: p.refresh_token_rotation,
          grace_period_seconds: p.refresh_token_grace_period ?? null,
          reusable: p.refresh_token_reusable ?? false,
          refresh_token_lifetime_seconds: p.refresh_token_lifetime ?? null,
          refresh_token_idle_timeout_seconds: p.refresh_token_idle_timeout ?? null,
        },
        default_scopes: [...(p.default_scopes ?? [])],
        scopes: Object.fromEntries(
          Object.entries(p.scopes).map(([name, rules]) => [
            name,
            rules.map((r) => ({ method: r.method, path: r.path, ...(r.host ? { host: r.host } : {}), ...(r.query !== undefined ? { query: r.query } : {}) })),
          ]),
        ),
        notes: p.notes ?? null,
        sources: { ...(p.sources ?? {}) },
      };
    },
  });
}
