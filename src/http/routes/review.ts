import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { AgentService } from '../../agents/index.ts';
import type { RouteContext } from '../app.ts';

// GET /v1/review/scopes (agents/review.ts): granted vs used scopes per agent and grant over a
// window, and the narrower grant to apply with PATCH /v1/agents/{id}.

const grantReview = z.object({
  connection: z.string(),
  provider: z.string().nullable(),
  granted: z.array(z.string()),
  used: z.array(z.string()),
  unused: z.array(z.string()),
  suggested: z.array(z.string()).describe('the narrower grant: the used scopes; empty: remove the grant'),
  action: z.enum(['keep', 'narrow', 'remove']),
  uses: z.record(z.string(), z.number()).describe('proxied calls in the window per scope that allowed them'),
  denied_calls: z.number(),
  last_call_at: z.string().nullable(),
  token_exports: z.number(),
  note: z.string().optional(),
});

const agentReview = z.object({
  id: z.string(),
  name: z.string(),
  owner: z.string(),
  status: z.string(),
  last_used_at: z.string().nullable(),
  grants: z.array(grantReview),
  action: z.enum(['keep', 'narrow', 'revoke']),
  suggested_patch: z.object({ grants: z.array(z.object({ connection: z.string(), scopes: z.array(z.string()) })) }).optional(),
});

export function reviewRoutes(agents: Pick<AgentService, 'reviewScopes'>) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    r.addHook('onRequest', ctx.requireAdmin);
    r.get(
      '/v1/review/scopes',
      {
        schema: {
          tags: ['agents'],
          security: [{ admin: [] }],
          summary: 'Review granted against used scopes',
          description:
            'Per agent and grant over a window (default 30 days): the scopes granted, those its proxied calls used, the narrower grant to apply (`suggested_patch`, ' +
            'for `PATCH /v1/agents/{id}`), denied calls and token exports. Reads the audit log; changes nothing.',
          querystring: z.object({
            since: z.string().min(1).max(64).optional().describe('ISO 8601 date-time, or a duration back from now (30d, 12h, P30D); default 30 days'),
            owner: z.string().min(1).max(320).optional(),
            agent: z.string().min(1).max(64).optional(),
            after: z.string().min(1).max(64).optional().describe('next_after of the previous page'),
            limit: z.coerce.number().int().min(1).max(1000).optional(),
          }),
          response: { 200: z.object({ since: z.string(), until: z.string(), agents: z.array(agentReview), next_after: z.string().optional() }) },
        },
      },
      async (req) => agents.reviewScopes(req.query),
    );
  };
}
