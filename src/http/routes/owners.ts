import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Offboarding } from '../../agents/index.ts';
import type { RouteContext } from '../app.ts';
import { adminActorOf } from '../auth.ts';

// Owners and their offboarding (DESIGN.md, "Owners and governance"; docs/governance.md).

const ownerParam = z.object({ owner: z.string().trim().min(1).max(320) });

export const ownerView = z.object({
  id: z.string(),
  email: z.string().nullable(),
  status: z.enum(['active', 'offboarded']),
  created_at: z.string(),
  offboarded_at: z.string().nullable(),
  /** Agents not revoked. */
  agents: z.number().int(),
  /** Connections held now (an offboarding revokes and deletes them). */
  connections: z.number().int(),
});

// The contract's shape, plus the proof's status and time and the OAuth clients among the agents.
export const offboardReport = z.object({
  owner: z.string(),
  status: z.literal('offboarded'),
  offboarded_at: z.string(),
  agents: z.array(z.object({ id: z.string(), revoked: z.boolean() })),
  oauth_clients: z.array(z.object({ client_id: z.string(), agent: z.string(), revoked: z.boolean() })),
  connections: z.array(
    z.object({
      id: z.string(),
      provider: z.string(),
      revoked: z.boolean(),
      verified: z.boolean(),
      verification: z.enum(['introspection', 'refresh_refused', 'probe_401', 'unsupported']),
      detail: z.string(),
      idp_status: z.number().int().nullable(),
      checked_at: z.string(),
    }),
  ),
});

export function ownerRoutes(offboarding: Offboarding) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    r.addHook('onRequest', ctx.requireAdmin);
    const tags = ['owners'];
    const security = [{ admin: [] }];

    r.get(
      '/v1/owners',
      {
        schema: {
          tags,
          security,
          summary: 'List owners',
          description: 'The people connections and agents belong to, with their counts of live agents and connections; paged by id with `next_after`.',
          querystring: z.object({
            status: z.enum(['active', 'offboarded']).optional(),
            limit: z.coerce.number().int().min(1).max(1000).default(100),
            /** The previous page's `next_after`: owners whose id sorts after it. */
            after: z.string().min(1).max(320).optional(),
          }),
          response: { 200: z.object({ owners: z.array(ownerView), next_after: z.string().optional() }) },
        },
      },
      async (req) => {
        const owners = await offboarding.list(req.query);
        return { owners, ...(owners.length === req.query.limit ? { next_after: owners[owners.length - 1]!.id } : {}) };
      },
    );

    r.get(
      '/v1/owners/:owner',
      {
        schema: {
          tags,
          security,
          summary: 'Read an owner',
          description: 'Status and counts; once offboarded, the offboarding report with the proof of each revocation.',
          problems: ['not_found'],
          params: ownerParam,
          response: { 200: ownerView.extend({ offboarding: offboardReport.optional() }) },
        },
      },
      async (req) => offboarding.get(req.params.owner),
    );

    // Idempotent: a second call answers the recorded state (and retries what failed transiently).
    r.post(
      '/v1/owners/:owner/offboard',
      {
        schema: {
          tags,
          security,
          summary: 'Offboard an owner',
          description:
            "Revokes every agent and OAuth client of the owner and every upstream grant they hold, and reports per grant whether the revocation was verified " +
            '(introspection, a refused refresh, or a refused API probe). Idempotent: a second call answers the recorded state and retries what failed transiently.',
          problems: ['not_found'],
          params: ownerParam,
          response: { 200: offboardReport },
        },
      },
      async (req) => offboarding.offboard(req.params.owner, adminActorOf(req)),
    );
  };
}
