import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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
