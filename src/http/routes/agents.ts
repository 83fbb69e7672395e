import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ORPHAN_REASONS, type AgentService } from '../../agents/index.ts';
import type { RouteContext } from '../app.ts';
import { adminActorOf } from '../auth.ts';
import { tagFilterOf, tagsBody, tagsPatchBody, tagsQuery, tagsView } from './tags.ts';

const id = z.object({ id: z.string().min(1).max(64) });

const grantBody = z.strictObject({
  connection: z.string().min(1).max(64),
  scopes: z.array(z.string().min(1).max(512)).min(1).max(200),
  token_export: z.boolean().optional(),
});

const createBody = z.strictObject({
  name: z.string().trim().min(1).max(100),
  owner: z.string().trim().min(1).max(320),
  expires_at: z.iso.datetime({ offset: true }).nullable().optional(),
  grants: z.array(grantBody).min(1).max(100),
  ...tagsBody,
});

// The response schemas are the guard against leaking a key: only `created` has `api_key`, and
// no schema has the key's hash; extra fields are stripped on the way out.
export const agentView = z.object({
  id: z.string(),
  name: z.string(),
  owner: z.string(),
  status: z.enum(['active', 'expired', 'suspended', 'revoked']),
  key_id: z.string(),
  expires_at: z.string().nullable(),
  created_at: z.string(),
  last_used_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
  grants: z.array(z.object({ connection: z.string(), scopes: z.array(z.string()), token_export: z.boolean() })),
  ...tagsView,
  /** Only while suspended: since when, and why (orphan reasons, or `admin`). */
  suspended_at: z.string().optional(),
  suspended_reasons: z.array(z.string()).optional(),
});

const listedAgent = agentView.extend({
  orphan_reasons: z.array(z.enum(ORPHAN_REASONS as [string, ...string[]])).optional(),
});

/**
 * PATCH /v1/agents/{id} (agents/update.ts): narrowing only. `grants` is the list the agent keeps,
 * each a current grant with a subset of its scopes; a grant left out is removed.
 */
const updateBody = z.strictObject({
  grants: z
    .array(
      z.strictObject({
        connection: z.string().min(1).max(64),
        scopes: z.array(z.string().min(1).max(512)).min(1).max(200),
        token_export: z.boolean().optional(),
      }),
    )
    .max(100)
    .optional(),
  status: z.enum(['active', 'suspended']).optional(),
  ...tagsPatchBody,
});

const owner = z.string().trim().min(1).max(320);

const shareView = z.object({ connection: z.string(), owner: z.string(), created_at: z.string() });

const created = agentView.extend({
  /** Shown once: only its hash is stored. */
  api_key: z.string(),
});

export function agentRoutes(agents: AgentService) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    r.addHook('onRequest', ctx.requireAdmin);
    const tags = ['agents'];
    const security = [{ admin: [] }];

    r.post(
      '/v1/agents',
      {
        schema: {
          tags,
          security,
          summary: 'Create an agent',
          description:
            'An agent is its own identity with narrow grants: per connection, the scopes whose method/path rules it may call through the proxy, and whether it may export the token. ' +
            'The answer holds its API key (`wrt_…`) this once; only a hash is stored. The owner must not be offboarded, and each connection must be the owner\'s or shared with them.',
          problems: ['not_found', 'conflict', 'policy_denied'],
          body: createBody.meta({
            examples: [{ name: 'release-bot', owner: 'alice@example.com', grants: [{ connection: 'con_7hq2', scopes: ['repo'], token_export: false }] }],
          }),
          response: {
            201: created.meta({
              examples: [
                {
                  id: 'agt_3n8q',
                  name: 'release-bot',
                  owner: 'alice@example.com',
                  status: 'active',
                  key_id: 'k8Jd2Qx',
                  expires_at: null,
                  created_at: '2026-01-01T00:00:00.000Z',
                  last_used_at: null,
                  revoked_at: null,
                  grants: [{ connection: 'con_7hq2', scopes: ['repo'], token_export: false }],
                  api_key: 'wrt_k8Jd2Qx_…',
                },
              ],
            }),
          },
        },
      },
      async (req, reply) => {
        const agent = await agents.create(req.body, adminActorOf(req));
        return reply.code(201).header('cache-control', 'no-store').send(agent);
      },
    );

    r.get(
      '/v1/agents',
      {
        schema: {
          tags,
          security,
          summary: 'List agents',
          description:
            'Agents filtered by owner, status and tags; `orphaned=true` lists only live agents whose owner is offboarded or unknown, whose connections are all unusable, ' +
            'that expired, or that are idle, each with its `orphan_reasons`. Never a key.',
          querystring: z.object({
            /** Only agents not revoked whose owner is offboarded or unknown, whose connections are all unusable, that expired, or that are idle. */
            orphaned: z.enum(['true', 'false']).optional(),
            owner: z.string().min(1).optional(),
            status: z.enum(['active', 'expired', 'suspended', 'revoked']).optional(),
            limit: z.coerce.number().int().min(1).max(1000).optional(),
            ...tagsQuery,
          }),
          response: { 200: z.object({ agents: z.array(listedAgent) }) },
        },
      },
      async (req) => {
        const { orphaned, owner, status, limit } = req.query;
        const tags = tagFilterOf(req.query);
        if (orphaned === 'true') return { agents: await agents.orphaned({ owner, limit, ...tags }) };
        return { agents: await agents.list({ owner, status, limit, ...tags }) };
      },
    );

    r.get(
      '/v1/agents/:id',
      { schema: { tags, security, summary: 'Read an agent', description: 'Its owner, status, grants, expiry and last use. Never its key.', problems: ['not_found'], params: id, response: { 200: agentView } } },
      async (req) => agents.get(req.params.id),
    );

    // Narrows grants in place (same key) and suspends or reactivates; widening is refused (agents/update.ts).
    r.patch(
      '/v1/agents/:id',
      {
        schema: {
          tags,
          security,
          summary: 'Narrow, suspend or reactivate an agent',
          description:
            '`grants` is the list the agent keeps, each a current grant with a subset of its scopes (a grant left out is removed); widening is refused. ' +
            '`status` suspends the agent or reactivates it; tags change as in the connection PATCH. The key stays the same.',
          problems: ['not_found', 'conflict'],
          params: id,
          body: updateBody,
          response: { 200: agentView },
        },
      },
      async (req) => agents.update(req.params.id, req.body, adminActorOf(req)),
    );

    // Idempotent: revoking a revoked agent answers 200 with its view again.
    r.delete(
      '/v1/agents/:id',
      {
        schema: {
          tags,
          security,
          summary: 'Revoke an agent',
          description: 'Its key stops working at once on this instance and within a second on every other; its grants go. Idempotent: a revoked agent answers its view again.',
          problems: ['not_found'],
          params: id,
          response: { 200: agentView },
        },
      },
      async (req) => agents.revoke(req.params.id, adminActorOf(req)),
    );

    // Cross-owner grants: the connection's owner lets agents of `owner` be granted it (agents/shares.ts).
    const shareTags = ['connections'];
    r.post(
      '/v1/connections/:id/shares',
      {
        schema: {
          tags: shareTags,
          security,
          summary: 'Share a connection with another owner',
          description: "Lets agents of `owner` be granted this connection (the connection's owner consents to it). 201 when created, 200 when it existed.",
          problems: ['not_found', 'conflict'],
          params: id,
          body: z.strictObject({ owner }),
          response: { 200: shareView, 201: shareView },
        },
      },
      async (req, reply) => {
        const { created, ...share } = await agents.shares.share(req.params.id, req.body.owner, adminActorOf(req));
        return reply.code(created ? 201 : 200).send(share);
      },
    );

    r.get(
      '/v1/connections/:id/shares',
      {
        schema: {
          tags: shareTags,
          security,
          summary: "List a connection's shares",
          description: 'The other owners whose agents may be granted this connection.',
          problems: ['not_found'],
          params: id,
          response: { 200: z.object({ shares: z.array(shareView) }) },
        },
      },
      async (req) => ({ shares: await agents.shares.list(req.params.id) }),
    );

    // Removes the allowance and every grant on the connection held by an agent of that owner.
    r.delete(
      '/v1/connections/:id/shares/:owner',
      {
        schema: {
          tags: shareTags,
          security,
          summary: 'Take a share back',
          description: 'Removes the allowance and every grant on this connection held by an agent of that owner (listed in `grants_removed`).',
          problems: ['not_found'],
          params: id.extend({ owner }),
          response: { 200: z.object({ connection: z.string(), owner: z.string(), grants_removed: z.array(z.string()) }) },
        },
      },
      async (req) => agents.shares.unshare(req.params.id, req.params.owner, adminActorOf(req)),
    );
  };
}
