import { Pool, type Dispatcher } from 'undici';

export interface UpstreamOptions {
  /** Connections per upstream origin. */
  connections?: number;
  connectTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
}

/** One undici pool per upstream origin, kept for the life of the process. */
export function createUpstreams(opts: UpstreamOptions = {}) {
  const pools = new Map<string, Pool>();
  return {
    pool(origin: string): Dispatcher {
      let pool = pools.get(origin);
      if (!pool) {
        pool = new Pool(origin, {
          connections: opts.connections ?? 128,
          connect: { timeout: opts.connectTimeoutMs ?? 5_000 },
          keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30_000,
          pipelining: 1,
        });
        pools.set(origin, pool);
      }
      return pool;
    },
    async close(): Promise<void> {
      await Promise.all([...pools.values()].map((p) => p.close()));
      pools.clear();
    },
  };
}

export type Upstreams = ReturnType<typeof createUpstreams>;
