// The load generator (its own process): closed loop, one request in flight per connection of an
// undici Pool, `concurrency` connections. Requests that end in the first `warmMs` are not recorded.
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { cpuMark, serveRole } from './ipc.ts';

export interface RunRequest {
  origin: string;
  path: string;
  headers: Record<string, string>;
  concurrency: number;
  /** Requests that end before this (ms after the start) are not recorded: connections, JIT. */
  warmMs: number;
  /** The recorded window after the warm-up, ms. */
  durationMs: number;
}

export interface RunResult {
  /** Requests completed inside the window. */
  count: number;
  /** Requests completed in the whole run, warm-up included. */
  total: number;
  /** Non-200 answers or failures anywhere in the run (must be 0). */
  errors: number;
  firstError?: string;
  windowMs: number;
  /** Latency of each request completed in the window, ms (request sent → body fully read). */
  latencies: Float64Array;
  /** The load generator's own CPU during the run, ms. */
  cpuMs: number;
}

// One pool per (origin, concurrency), kept for the whole bench: keep-alive connections are reused
// from round to round, as a real client would.
const pools = new Map<string, Pool>();

async function run(msg: RunRequest): Promise<RunResult> {
  const key = `${msg.origin}|${msg.concurrency}`;
  let pool = pools.get(key);
  if (!pool) {
    pool = new Pool(msg.origin, { connections: msg.concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
    pools.set(key, pool);
  }
  const p = pool;
  const latencies: number[] = [];
  let count = 0;
  let total = 0;
  let errors = 0;
  let firstError: string | undefined;
  const cpu0 = cpuMark().cpuMs;
  const start = performance.now();
  const windowStart = start + msg.warmMs;
  const windowEnd = windowStart + msg.durationMs;
  const loop = async () => {
    while (performance.now() < windowEnd) {
      const t0 = performance.now();
      try {
        const res = await p.request({ path: msg.path, method: 'GET', headers: msg.headers });
        await res.body.arrayBuffer();
        if (res.statusCode !== 200) {
          errors++;
          firstError ??= `status ${res.statusCode}`;
          continue;
        }
      } catch (err) {
        errors++;
        firstError ??= String((err as Error).message);
        continue;
      }
      const t1 = performance.now();
      total++;
      if (t1 >= windowStart && t1 < windowEnd) {
        count++;
        latencies.push(t1 - t0);
      }
    }
  };
  await Promise.all(Array.from({ length: msg.concurrency }, loop));
  return { count, total, errors, firstError, windowMs: msg.durationMs, latencies: Float64Array.from(latencies), cpuMs: cpuMark().cpuMs - cpu0 };
}

serveRole({}, { run: (m) => run(m as unknown as RunRequest) }, async () => {
  await Promise.all([...pools.values()].map((p) => p.close()));
});
