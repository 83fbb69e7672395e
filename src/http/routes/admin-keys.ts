import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ADMIN_ROLES, type AdminKeys } from '../../admin/index.ts';
import { adminActorOf } from '../auth.ts';
import type { RouteContext } from '../app.ts';

// Scoped admin keys (docs/governance.md, "Admin roles"). Every route here needs the role admin
// (admin/roles.ts), the GETs included.

const id = z.object({ id: z.string().min(1).max(64) });

const createBody = z.strictObject({
  name: z.string().trim().min(1).max(100),
  role: z.enum(ADMIN_ROLES),
  expires_at: z.iso.datetime({ offset: true }).nullable().optional(),
});

// The response schemas are the guard against leaking a key: only `created` has `api_key`, and
// no schema has the hash; extra fields are stripped on the way out.
const keyView = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(ADMIN_ROLES),
  status: z.enum(['active', 'expired', 'revoked']),
  created_by: z.string(),
  created_at: z.string(),
  expires_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
  last_used_at: z.string().nullable(),
});

const created = keyView.extend({
  /** Shown once: only its hash is stored. */
  api_key: z.string(),
});

export function adminKeyRoutes(keys: AdminKeys) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    r.addHook('onRequest', ctx.requireAdmin);
    const tags = ['admin-keys'];
    const security = [{ admin: [] }];

    r.post(
      '/v1/admin-keys',
      {
        schema: {
          tags,
          security,
          summary: 'Create an admin key',
          description: 'Mints an admin key with a role (read, operate or admin); the key is in this answer only.',
          body: createBody,
          response: { 201: created },
        },
      },
      async (req, reply) => {
        const key = await keys.create(req.body, adminActorOf(req));
        return reply.code(201).header('cache-control', 'no-store').send(key);
      },
    );

    r.get(
      '/v1/admin-keys',
      { schema: { tags, security, summary: 'List admin keys', description: 'Every admin key with its role, status and last use. Never a key.', response: { 200: z.object({ admin_keys: z.array(keyView) }) } } },
      async () => ({
        admin_keys: await keys.list(),
      }),
    );

    r.get(
      '/v1/admin-keys/:id',
      { schema: { tags, security, summary: 'Read an admin key', description: 'Its role, status, creator and last use. Never the key.', problems: ['not_found'], params: id, response: { 200: keyView } } },
      async (req) => keys.get(req.params.id),
    );

    // Idempotent: revoking a revoked key answers 200 with its view again.
    r.delete(
      '/v1/admin-keys/:id',
      {
        schema: {
          tags,
          security,
          summary: 'Revoke an admin key',
          description: 'Revokes the key: refused on this instance at once, on every instance within a second. Idempotent.',
          problems: ['not_found'],
          params: id,
          response: { 200: keyView },
        },
      },
      async (req) => keys.revoke(req.params.id, adminActorOf(req)),
    );
  };
}
