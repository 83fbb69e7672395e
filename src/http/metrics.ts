import type { FastifyRequest } from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { hashSecret, safeEqual } from '../crypto/index.ts';
import { WarrantError } from '../errors/index.ts';
import { bearerOf } from './auth.ts';

/** One registry per app instance, so tests can run several apps in one process. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'warrant_' });
  return {
    registry,
    httpRequests: new Histogram({
      name: 'warrant_http_request_duration_seconds',
      help: 'Duration of HTTP requests Warrant answered, by route and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: [registry],
    }),
    tokenRefreshes: new Counter({
      name: 'warrant_token_refreshes_total',
      help: 'Refresh calls made to identity providers, by provider and outcome',
      labelNames: ['provider', 'outcome'] as const,
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * `/metrics` behind WARRANT_METRICS_TOKEN (a bearer token, compared in constant time over hashes);
 * undefined when the setting is unset, and `/metrics` stays open (DESIGN.md).
 */
export function metricsGuard(token: string | undefined): ((request: FastifyRequest) => Promise<void>) | undefined {
  if (!token) return undefined;
  const expected = hashSecret(token);
  return async (request) => {
    const given = bearerOf(request);
    if (!given || !safeEqual(hashSecret(given), expected)) {
      throw new WarrantError('admin_unauthenticated', 'send WARRANT_METRICS_TOKEN as Authorization: Bearer …');
    }
  };
}
