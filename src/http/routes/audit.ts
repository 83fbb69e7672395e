import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { AuditLog } from '../../events/index.ts';
import type { RouteContext } from '../app.ts';

const entry = z.object({
  seq: z.number(),
  id: z.string(),
  at: z.string(),
  type: z.string(),
  actor: z.string(),
  subject: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
  hash: z.string(),
});

export function auditRoutes(audit: AuditLog) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    r.addHook('onRequest', ctx.requireAdmin);
    const tags = ['audit'];
    r.get(
      '/v1/audit',
      {
        schema: {
          tags,
          security: [{ admin: [] }],
          querystring: z.object({
            type: z.string().min(1).optional(),
            subject: z.string().min(1).optional(),
            actor: z.string().min(1).optional(),
            after: z.coerce.number().int().nonnegative().optional(),
            limit: z.coerce.number().int().min(1).max(1000).default(100),
          }),
          response: { 200: z.object({ entries: z.array(entry), next_after: z.number().optional() }) },
        },
      },
      async (req) => {
        const { after, ...q } = req.query;
        const rows = await audit.query({ ...q, afterSeq: after });
        return {
          entries: rows.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
          ...(rows.length === q.limit ? { next_after: rows[rows.length - 1]!.seq } : {}),
        };
      },
    );
    r.get(
      '/v1/audit/verify',
      {
        schema: {
          tags,
          security: [{ admin: [] }],
          response: {
            200: z.object({
              ok: z.boolean(),
              entries: z.number(),
              first_bad: z.number().optional(),
              keyed_from: z.number().optional().describe('first seq keyed with the chain key (HMAC); earlier entries are unkeyed SHA-256'),
            }),
          },
        },
      },
      async () => audit.verify(),
    );
    // For external anchoring (docs/audit.md): publish it somewhere append-only, check later exports against it.
    r.get(
      '/v1/audit/head',
      {
        schema: {
          tags,
          security: [{ admin: [] }],
          response: {
            200: z.object({
              seq: z.number().describe('0 while the log is empty'),
              hash: z.string(),
              at: z.string().nullable(),
              keyed: z.boolean().describe("the head entry's hash is an HMAC under the chain key, and it holds"),
              keyed_from: z.number().optional(),
            }),
          },
        },
      },
      async () => {
        const head = await audit.head();
        return { ...head, at: head.at === null ? null : new Date(head.at).toISOString() };
      },
    );
  };
}
