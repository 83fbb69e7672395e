import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { parseCursor, toOcsf, type AuditEntry, type AuditLog } from '../../events/index.ts';
import type { RouteContext } from '../app.ts';

/** `since`: an RFC 3339 time, or epoch milliseconds. */
const sinceParam = z
  .string()
  .refine((v) => /^\d{1,15}$/.test(v) || (/^\d{4}-\d{2}-\d{2}/.test(v) && Number.isFinite(Date.parse(v))), 'expected an RFC 3339 time (2025-06-01T00:00:00Z) or epoch milliseconds')
  .transform((v) => (/^\d+$/.test(v) ? Number(v) : Date.parse(v)));

/** One JSON Lines record of the `jsonl` export: the entry as stored, with its chain fields. */
export const jsonlRecord = (e: AuditEntry) => ({
  seq: e.seq,
  id: e.id,
  at: new Date(e.at).toISOString(),
  type: e.type,
  actor: e.actor,
  subject: e.subject,
  data: e.data,
  prev_hash: e.prev_hash,
  hash: e.hash,
});

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

/** One entry on the wire, for the API's own clients (the CLI, the dashboard). */
export type AuditEntryView = z.infer<typeof entry>;

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
          summary: 'Query the audit log',
          description:
            'Entries filtered by type, subject, actor and time, oldest first or newest first (`order=desc`), paged with `next_after` / `next_before`. ' +
            'Every refresh, proxied call, token export, revocation and admin action is an entry; entries hold no secret.',
          querystring: z.object({
            type: z.string().min(1).optional(),
            subject: z.string().min(1).optional(),
            actor: z.string().min(1).optional(),
            after: z.coerce.number().int().nonnegative().optional(),
            before: z.coerce.number().int().positive().optional().describe('only entries with a seq below this one (paging a newest-first list: pass next_before)'),
            since: sinceParam.optional().describe('only entries at or after this time (RFC 3339, or epoch ms)'),
            order: z.enum(['asc', 'desc']).default('asc').describe('`desc`: newest first'),
            limit: z.coerce.number().int().min(1).max(1000).default(100),
          }),
          response: { 200: z.object({ entries: z.array(entry), next_after: z.number().optional(), next_before: z.number().optional() }) },
        },
      },
      async (req) => {
        const { after, before, since, ...q } = req.query;
        const rows = await audit.query({ ...q, afterSeq: after, beforeSeq: before, sinceMs: since });
        const full = rows.length === q.limit;
        const last = rows[rows.length - 1]?.seq;
        return {
          entries: rows.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
          ...(full && q.order === 'asc' ? { next_after: last } : {}),
          ...(full && q.order === 'desc' ? { next_before: last } : {}),
        };
      },
    );
    r.get(
      '/v1/audit/verify',
      {
        schema: {
          tags,
          security: [{ admin: [] }],
          summary: 'Verify the audit hash chain',
          description: 'Recomputes the chain (SHA-256, HMAC under the chain key from `keyed_from` on) and checks the sealed head: `ok`, or the first entry that does not verify and why.',
          response: {
            200: z.object({
              ok: z.boolean(),
              entries: z.number(),
              first_bad: z.number().optional().describe('seq of the first entry that does not verify (or that the sealed head names)'),
              first_bad_id: z.string().optional().describe('the id of that entry'),
              reason: z
                .enum(['hash_mismatch', 'chain_break', 'unkeyed_rewritten', 'truncated', 'seal_invalid', 'seal_missing'])
                .optional()
                .describe('why it does not verify (docs/audit.md, "Verifying")'),
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
          summary: 'The head of the audit chain',
          description: 'The last entry\'s seq and hash, to publish somewhere append-only (external anchoring) and check later exports against.',
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
    // For SIEM exporters (docs/audit.md, "Export"): a page of JSON Lines, its cursor in a header.
    r.get(
      '/v1/audit/export',
      {
        schema: {
          tags,
          security: [{ admin: [] }],
          summary: 'Export the audit log (JSON Lines or OCSF)',
          problems: ['invalid_request'],
          otherResponses: {
            200: {
              description: 'One page of JSON Lines; `warrant-next-cursor`, `warrant-export-count` and `warrant-export-caught-up` headers',
              content: { 'application/x-ndjson': { schema: { type: 'string' } } },
            },
          },
          description:
            'Streams one page of the audit log as JSON Lines (application/x-ndjson), oldest first: the entries as stored (`format=jsonl`) or ' +
            'OCSF 1.8 events, API Activity 6003 and Account Change 3001 (`format=ocsf`). The page is fixed before it streams: ' +
            '`warrant-next-cursor` is where the next page starts (pass it as `cursor`), `warrant-export-count` how many lines follow, ' +
            '`warrant-export-caught-up: true` that the page reached the head (a later call returns what was written since).',
          querystring: z.object({
            format: z.enum(['jsonl', 'ocsf']).default('jsonl'),
            since: sinceParam.optional().describe('only entries at or after this time (RFC 3339, or epoch ms)'),
            cursor: z.string().min(1).max(40).optional().describe('warrant-next-cursor of the previous page; without it, from the start'),
            limit: z.coerce.number().int().min(1).max(100_000).default(1000),
          }),
        },
      },
      async (req, reply) => {
        const { format, since, limit } = req.query;
        const cursor = req.query.cursor === undefined ? undefined : parseCursor(req.query.cursor, 'query.cursor');
        const page = await audit.exportPage({ cursor, since, limit });
        const line = format === 'ocsf' ? (e: AuditEntry) => toOcsf(e) : jsonlRecord;
        reply
          .type('application/x-ndjson; charset=utf-8')
          .header('cache-control', 'no-store')
          .header('warrant-export-count', String(page.count))
          .header('warrant-export-caught-up', String(page.caughtUp));
        if (page.next) reply.header('warrant-next-cursor', page.next);
        async function* lines() {
          for await (const e of page.entries()) yield `${JSON.stringify(line(e))}\n`;
        }
        return reply.send(Readable.from(lines()));
      },
    );
  };
}
