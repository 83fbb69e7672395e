import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { WarrantError } from '../../errors/index.ts';
import type { AuditQueue } from '../../events/audit-queue.ts';
import type { ProxyAgent } from '../../proxy/forward.ts';
import type { TokenService } from '../../tokens/index.ts';
import { bearerOf } from '../auth.ts';
import { iso } from '../../util/time.ts';

const minTtl = z.coerce.number().int().min(0).max(86_400);

/**
 * For stateless agents: `GET /v1/connections/{id}/token` (only with `token_export`; never a
 * refresh token) and `POST /v1/connections/{id}/lease` (refresh now if the token would not
 * outlive the batch; the token itself only with `token_export`).
 */
export function agentTokenRoutes(deps: { tokens: TokenService; auditQueue: AuditQueue; authenticate(bearer: string | undefined): Promise<ProxyAgent> }) {
  return async (app: FastifyInstance) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    const tags = ['agent'];
    const security = [{ agent: [] }];
    const params = z.object({ id: z.string().min(1).max(64) });

    async function authorize(bearer: string | undefined, connection: string, needExport: boolean) {
      const agent = await deps.authenticate(bearer);
      const grant = agent.grants.find((g) => g.connection_id === connection);
      if (!grant) throw new WarrantError('policy_denied', `this agent has no grant for connection ${connection}`, { connection });
      if (needExport && !grant.token_export) {
        throw new WarrantError('policy_denied', `this agent's grant on ${connection} does not allow token export; call through /v1/proxy instead`, { connection });
      }
      return { agent, grant };
    }

    function audited(type: string, agentId: string, connection: string, data: Record<string, unknown>) {
      const slot = deps.auditQueue.reserve();
      if (!slot) throw new WarrantError('unavailable', 'the audit log cannot be written right now; Warrant refuses calls it cannot record');
      return () => slot.commit({ type, actor: `agent:${agentId}`, subject: `connection:${connection}`, data });
    }

    r.get(
      '/v1/connections/:id/token',
      {
        schema: {
          tags,
          security,
          params,
          querystring: z.object({ min_ttl: minTtl.optional() }),
          response: { 200: z.object({ connection: z.string(), access_token: z.string(), token_type: z.literal('Bearer'), expires_at: z.string().nullable() }) },
        },
      },
      async (req, reply) => {
        const { agent } = await authorize(bearerOf(req), req.params.id, true);
        const commit = audited('token.exported', agent.id, req.params.id, { min_ttl: req.query.min_ttl ?? 0 });
        const t = await deps.tokens.getFreshToken(req.params.id, { minTtlSeconds: req.query.min_ttl, actor: `agent:${agent.id}` });
        commit();
        reply.header('cache-control', 'no-store');
        return { connection: req.params.id, access_token: t.accessToken, token_type: 'Bearer' as const, expires_at: iso(t.expiresAt) };
      },
    );

    r.post(
      '/v1/connections/:id/lease',
      {
        schema: {
          tags,
          security,
          params,
          body: z.strictObject({ min_ttl: minTtl }),
          response: {
            200: z.object({
              connection: z.string(),
              expires_at: z.string().nullable(),
              refreshed: z.boolean(),
              /** False when the IdP's lifetime is shorter than min_ttl: lease again before expires_at. */
              covers_min_ttl: z.boolean(),
              access_token: z.string().optional(),
            }),
          },
        },
      },
      async (req, reply) => {
        const { agent, grant } = await authorize(bearerOf(req), req.params.id, false);
        const commit = audited('token.leased', agent.id, req.params.id, { min_ttl: req.body.min_ttl });
        const t = await deps.tokens.getFreshToken(req.params.id, { minTtlSeconds: req.body.min_ttl, actor: `agent:${agent.id}` });
        commit();
        reply.header('cache-control', 'no-store');
        return {
          connection: req.params.id,
          expires_at: iso(t.expiresAt),
          refreshed: t.refreshed,
          covers_min_ttl: t.expiresAt === null || t.expiresAt - Date.now() >= req.body.min_ttl * 1000,
          ...(grant.token_export ? { access_token: t.accessToken } : {}),
        };
      },
    );
  };
}
