import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { WarrantError } from '../../errors/index.ts';
import { metricsGuard, type Metrics } from '../metrics.ts';

export async function healthRoutes(app: FastifyInstance, deps: { ping(): Promise<void>; auditAccepting?(): boolean; metrics: Metrics; metricsToken?: string }) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const status = z.object({ status: z.literal('ok') });

  r.get(
    '/healthz',
    {
      schema: {
        tags: ['health'],
        summary: 'Liveness',
        description: 'Answers 200 while the process serves HTTP; checks nothing else. Open.',
        response: { 200: status },
      },
      logLevel: 'warn',
    },
    async () => ({ status: 'ok' as const }),
  );

  r.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness',
        description:
          'Answers 200 when the store is reachable and the audit log is being written, 503 `unavailable` when the store is not reachable or ' +
          'the audit log refuses calls (writes failing, or entries unwritten past WARRANT_AUDIT_WRITE_DEADLINE_MS): take the instance out of the load balancer. Open.',
        problems: ['unavailable'],
        response: { 200: status },
      },
      logLevel: 'warn',
    },
    async () => {
      try {
        await deps.ping();
      } catch (err) {
        throw new WarrantError('unavailable', 'the store is not reachable', {}, { cause: err });
      }
      if (deps.auditAccepting && !deps.auditAccepting()) {
        throw new WarrantError('unavailable', 'the audit log cannot be written right now; this instance refuses calls it cannot record');
      }
      return { status: 'ok' as const };
    },
  );

  const guard = metricsGuard(deps.metricsToken);
  r.get(
    '/metrics',
    {
      schema: {
        tags: ['health'],
        summary: 'Prometheus metrics',
        description:
          'Request durations by route and status, refresh calls by provider and outcome, process metrics, in the Prometheus text format. ' +
          'Open unless WARRANT_METRICS_TOKEN is set; then that token as `Authorization: Bearer` (else 401 `admin_unauthenticated`).',
        security: [{}, { metrics: [] }],
        problems: ['admin_unauthenticated'],
        otherResponses: { 200: { description: 'The metrics', content: { 'text/plain': { schema: { type: 'string' }, example: 'warrant_token_refreshes_total{provider="github",outcome="ok"} 12' } } } },
      },
      logLevel: 'warn',
      ...(guard ? { onRequest: guard } : {}),
    },
    async (_req, reply) => {
      reply.type(deps.metrics.registry.contentType);
      return deps.metrics.registry.metrics();
    },
  );
}
