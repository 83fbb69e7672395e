import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AGENT_STATUSES, CONNECTION_STATUSES, type Status } from '../../admin/index.ts';
import type { RouteContext } from '../app.ts';

// GET /v1/status (admin/status.ts): the overview `warrant status` prints. Role read.

const connectionStatus = z.enum(CONNECTION_STATUSES as [string, ...string[]]);
const counts = <T extends readonly string[]>(keys: T) => z.object(Object.fromEntries(keys.map((k) => [k, z.number()])) as Record<T[number], z.ZodNumber>);

const statusView = z.object({
  generated_at: z.string(),
  connections: z.object({ total: z.number(), by_status: counts(CONNECTION_STATUSES) }),
  upcoming_expiries: z
    .array(z.object({ id: z.string(), provider: z.string(), owner: z.string(), expires_at: z.string().nullable(), refresh_due_at: z.string() }))
    .describe('active connections whose next refresh is due soonest, soonest first'),
  failing: z
    .array(z.object({ id: z.string(), provider: z.string(), owner: z.string(), status: connectionStatus, last_error: z.string().nullable(), since: z.string() }))
    .describe('connections in reauth_required or error, most recently changed first'),
  agents: z.object({
    total: z.number(),
    by_status: counts(AGENT_STATUSES),
    orphans: z.number().describe('agents not revoked that lost their reason to exist (GET /v1/agents?orphaned=true)'),
    orphans_capped: z.boolean().describe('true: counting stopped at the cap; there are at least `orphans`'),
  }),
  audit: z.object({
    head_seq: z.number(),
    chain: z.enum(['ok', 'broken', 'verifying']).describe('the last verification of the whole chain (cached for a minute); verifying: none finished yet'),
    entries: z.number().optional(),
    first_bad: z.number().optional(),
    reason: z.string().optional(),
    verified_at: z.string().optional(),
  }),
});

export function statusRoutes(status: Status) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    r.addHook('onRequest', ctx.requireAdmin);
    r.get(
      '/v1/status',
      {
        schema: {
          tags: ['status'],
          security: [{ admin: [] }],
          summary: 'Overview: connections by status, upcoming expiries, failing connections, agents, audit chain',
          description:
            'Counts of connections by status and of agents by status (`expired`: active past its expiry), the orphan count, the next ' +
            '`limit` refreshes due, the `limit` failing connections most recently changed, and the audit chain verification (cached for a minute).',
          querystring: z.object({ limit: z.coerce.number().int().min(1).max(100).default(10).describe('rows in upcoming_expiries and failing') }),
          response: { 200: statusView },
        },
      },
      async (req) => status.report(req.query.limit),
    );
  };
}
