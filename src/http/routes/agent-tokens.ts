import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { WarrantError } from '../../errors/index.ts';
import type { AuditQueue } from '../../events/audit-queue.ts';
import { rateLimited, type Limits } from '../../limits/index.ts';
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
export function agentTokenRoutes(deps: {
  tokens: TokenService;
  auditQueue: AuditQueue;
  authenticate(bearer: string | undefined): Promise<ProxyAgent>;
  /** The same per-agent and per-connection limits as the proxy. */
  limits?: Pick<Limits, 'admit'>;
}) {
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

    /**
     * Runs `fn` within the agent's limits (`rate_limited` past them; refused calls are not audited)
     * and inside a reserved audit slot that is committed on every path: a failed export or
     * lease is recorded with its problem code, and never leaves a slot behind (a leaked slot per
     * failure would fill the queue and refuse every agent's calls).
     */
    async function audited<T>(type: string, agentId: string, connection: string, data: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
      const permit = deps.limits ? await deps.limits.admit(agentId, connection) : undefined;
      try {
        return await auditedWithin(type, agentId, connection, data, fn);
      } finally {
        permit?.release();
      }
    }

    /** The audit part of `audited`: the slot counts against the agent's share of the queue. */
    async function auditedWithin<T>(type: string, agentId: string, connection: string, data: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
      const slot = deps.auditQueue.reserve(agentId);
      if (!slot && !deps.auditQueue.hasShareLeft(agentId)) {
        throw rateLimited('agent_audit_share', 1, `this agent already holds its share of the audit queue (${deps.auditQueue.perKeyCapacity} calls in flight)`);
      }
      if (!slot) throw new WarrantError('unavailable', 'the audit log cannot be written right now; Warrant refuses calls it cannot record');
      const entry = (outcome: Record<string, unknown>) => ({ type, actor: `agent:${agentId}`, subject: `connection:${connection}`, data: { ...data, ...outcome } });
      try {
        const result = await fn();
        slot.commit(entry({ status: 200, code: null }));
        return result;
      } catch (err) {
        slot.commit(entry(err instanceof WarrantError ? { status: err.status, code: err.code } : { status: 500, code: 'internal_error' }));
        throw err;
      }
    }

    r.get(
      '/v1/connections/:id/token',
      {
        schema: {
          tags,
          security,
          summary: "Export the connection's access token",
          description:
            'For stateless agents that call the API themselves: a token valid for at least `min_ttl` seconds (refreshed first if needed; single-flight with any other refresh). ' +
            'Only for a grant with `token_export`; never a refresh token. Audited as `token.exported`. Prefer the proxy: it enforces the grant\'s method/path rules, an exported token does not.',
          problems: ['policy_denied', 'not_found', 'conflict', 'reauth_required', 'refresh_unavailable', 'rate_limited'],
          params,
          querystring: z.object({ min_ttl: minTtl.optional() }),
          response: {
            200: z
              .object({ connection: z.string(), access_token: z.string(), token_type: z.literal('Bearer'), expires_at: z.string().nullable() })
              .meta({ examples: [{ connection: 'con_7hq2', access_token: 'gho_…', token_type: 'Bearer', expires_at: '2026-01-01T08:00:00.000Z' }] }),
          },
        },
      },
      async (req, reply) => {
        const { agent } = await authorize(bearerOf(req), req.params.id, true);
        const t = await audited('token.exported', agent.id, req.params.id, { min_ttl: req.query.min_ttl ?? 0 }, () =>
          deps.tokens.getFreshToken(req.params.id, { minTtlSeconds: req.query.min_ttl, actor: `agent:${agent.id}` }),
        );
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
          summary: 'Lease: make sure the token outlives a batch',
          description:
            'Refreshes now if the token would expire within `min_ttl` seconds, so a batch that starts now is not cut by an expiry. `covers_min_ttl` is false when the ' +
            "IdP's own lifetime is shorter: lease again before `expires_at`. The token itself is in the answer only with `token_export`. Audited as `token.leased`.",
          problems: ['policy_denied', 'not_found', 'conflict', 'reauth_required', 'refresh_unavailable', 'rate_limited'],
          params,
          body: z.strictObject({ min_ttl: minTtl }).meta({ examples: [{ min_ttl: 3600 }] }),
          response: {
            200: z.object({
              connection: z.string(),
              expires_at: z.string().nullable(),
              refreshed: z.boolean(),
              /** False when the IdP's lifetime is shorter than min_ttl: lease again before expires_at. */
              covers_min_ttl: z.boolean(),
              access_token: z.string().optional(),
            }).meta({ examples: [{ connection: 'con_7hq2', expires_at: '2026-01-01T08:00:00.000Z', refreshed: true, covers_min_ttl: true }] }),
          },
        },
      },
      async (req, reply) => {
        const { agent, grant } = await authorize(bearerOf(req), req.params.id, false);
        const t = await audited('token.leased', agent.id, req.params.id, { min_ttl: req.body.min_ttl }, () =>
          deps.tokens.getFreshToken(req.params.id, { minTtlSeconds: req.body.min_ttl, actor: `agent:${agent.id}` }),
        );
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
