import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { WarrantError } from '../../errors/index.ts';
import { metricsGuard, type Metrics } from '../metrics.ts';

export async function healthRoutes(app: FastifyInstance, deps: { ping(): Promise<void>; metrics: Metrics; metricsToken?: string }) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const status = z.object({ status: z.literal('ok') });

  r.get('/healthz', { schema: { tags: ['health'], response: { 200: status } }, logLevel: 'warn' }, async () => ({
    status: 'ok' as const,
  }));

  r.get('/readyz', { schema: { tags: ['health'], response: { 200: status } }, logLevel: 'warn' }, async () => {
    try {
      await deps.ping();
    } catch (err) {
      throw new WarrantError('unavailable', 'the store is not reachable', {}, { cause: err });
    }
    return { status: 'ok' as const };
  });

  const guard = metricsGuard(deps.metricsToken);
  r.get('/metrics', { schema: { tags: ['health'], hide: true }, logLevel: 'warn', ...(guard ? { onRequest: guard } : {}) }, async (_req, reply) => {
    reply.type(deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
}
