import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { viewOf, type ConnectionService } from '../../tokens/index.ts';
import type { RouteContext } from '../app.ts';
import { adminActorOf } from '../auth.ts';
import { MAX_EXPIRES_IN_SECONDS } from '../../oauth/index.ts';

const id = z.object({ id: z.string().min(1).max(64) });
const scopeList = z.array(z.string().min(1).max(512)).max(200);
const params = z.record(z.string().regex(/^[a-z][a-z0-9_]*$/), z.string().max(2048));

export const connectionView = z.object({
  id: z.string(),
  provider: z.string(),
  environment: z.string(),
  owner: z.string(),
  status: z.enum(['active', 'reauth_required', 'revoked', 'error']),
  expires_at: z.string().nullable(),
  scopes: z.array(z.string()),
  requested_scopes: z.array(z.string()),
  missing_scopes: z.array(z.string()),
  last_refreshed_at: z.string().nullable(),
  last_error: z.string().optional(),
  account: z.string().optional(),
  created_at: z.string(),
});

const importBody = z.strictObject({
  provider: z.string().min(1),
  environment: z.string().min(1).optional(),
  owner: z.string().min(1).max(320),
  access_token: z.string().min(1).max(16384).optional(),
  refresh_token: z.string().min(1).max(16384).optional(),
  // The same bound as a token endpoint's answer (src/oauth/token-response.ts): one year.
  expires_in: z.number().int().positive().max(MAX_EXPIRES_IN_SECONDS).optional(),
  scopes: scopeList,
  params: params.optional(),
  private_key: z.string().min(1).max(16384).optional(),
});

const revocationReport = z.object({
  id: z.string(),
  revoked: z.boolean(),
  verified: z.boolean(),
  verification: z.enum(['introspection', 'refresh_refused', 'api_refused', 'none']),
  detail: z.string(),
  deleted: z.boolean(),
});

export function connectionRoutes(connections: ConnectionService) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    r.addHook('onRequest', ctx.requireAdmin);
    const tags = ['connections'];
    const security = [{ admin: [] }];

    r.post('/v1/connections', { schema: { tags, security, body: importBody, response: { 201: connectionView } } }, async (req, reply) => {
      const row = await connections.importGrant(req.body, adminActorOf(req));
      return reply.code(201).send(viewOf(row));
    });

    r.get(
      '/v1/connections',
      {
        schema: {
          tags,
          security,
          querystring: z.object({
            owner: z.string().min(1).optional(),
            status: z.enum(['active', 'reauth_required', 'revoked', 'error']).optional(),
            provider: z.string().min(1).optional(),
          }),
          response: { 200: z.object({ connections: z.array(connectionView) }) },
        },
      },
      async (req) => ({ connections: (await connections.list(req.query)).map(viewOf) }),
    );

    r.get('/v1/connections/:id', { schema: { tags, security, params: id, response: { 200: connectionView } } }, async (req) =>
      viewOf(await connections.get(req.params.id)),
    );

    r.delete('/v1/connections/:id', { schema: { tags, security, params: id, response: { 200: revocationReport } } }, async (req) =>
      connections.revoke(req.params.id, adminActorOf(req)),
    );

    r.post(
      '/v1/connections/:id/refresh',
      {
        schema: {
          tags,
          security,
          params: id,
          response: { 200: z.object({ id: z.string(), expires_at: z.string().nullable(), refreshed: z.boolean() }) },
        },
      },
      async (req) => {
        const t = await connections.forceRefresh(req.params.id, adminActorOf(req));
        return { id: t.connectionId, expires_at: t.expiresAt === null ? null : new Date(t.expiresAt).toISOString(), refreshed: t.refreshed };
      },
    );
  };
}
