// Warrant's own limits on agents (DESIGN.md: `rate_limited`, 429 with Retry-After): a token
// bucket and a concurrency cap per agent and per connection, so no agent can take the broker
// (or a shared upstream grant) for itself. Rates are shared by every instance through Redis when
// REDIS_URL is set; concurrency is capped per instance, because what it protects — sockets,
// memory, audit slots — is each instance's own.
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import { WarrantError } from '../errors/index.ts';
import { createMemoryBuckets, type BucketSpec, type Refusal, type TokenBuckets } from './buckets.ts';
import { createRedisBuckets } from './redis.ts';

export { createMemoryBuckets, type BucketSpec, type Refusal, type TokenBuckets } from './buckets.ts';
export { createRedisBuckets, type RedisBucketsOptions } from './redis.ts';

/** The limit settings of the config (documented there); 0 turns a limit off. */
export type LimitSettings = Pick<
  Config,
  'agentRatePerSecond' | 'agentBurst' | 'agentConcurrency' | 'connectionRatePerSecond' | 'connectionBurst' | 'connectionConcurrency'
>;

/** One admitted call; release it when the call is over (idempotent). */
export interface Permit {
  release(): void;
}

export type LimitName = 'agent_rate' | 'agent_concurrency' | 'connection_rate' | 'connection_concurrency';

export function rateLimited(limit: LimitName | 'agent_audit_share', retryAfterSeconds: number, detail: string): WarrantError {
  return new WarrantError('rate_limited', detail, { limit, retry_after: Math.max(1, Math.ceil(retryAfterSeconds)) });
}

export interface LimitsOptions {
  settings: LimitSettings;
  /** Rates in Redis, shared across instances; unset: in-process. */
  redisUrl?: string;
  /** Key prefix in Redis (default `warrant:rate:`). */
  redisPrefix?: string;
  logger?: Logger;
  now?: () => number;
}

/**
 * `admit(agent, connection?)` for every agent call: refuses with `rate_limited` (naming the limit,
 * with `retry_after`) or returns a permit to release when the call ends. A connection is charged
 * only when the agent holds a grant on it, so no agent can spend another's connection budget.
 */
export function createLimits(opts: LimitsOptions) {
  const s = opts.settings;
  const local = createMemoryBuckets({ now: opts.now });
  const anyRate = s.agentRatePerSecond > 0 || s.connectionRatePerSecond > 0;
  const buckets: TokenBuckets = opts.redisUrl && anyRate
    ? createRedisBuckets({ url: opts.redisUrl, prefix: opts.redisPrefix, fallback: local, logger: opts.logger, now: opts.now })
    : local;
  const inFlight = new Map<string, number>();

  const up = (key: string) => inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
  const down = (key: string) => {
    const n = (inFlight.get(key) ?? 1) - 1;
    if (n <= 0) inFlight.delete(key);
    else inFlight.set(key, n);
  };

  function permitFor(agentKey: string | undefined, connectionKey: string | undefined): Permit {
    let done = false;
    return {
      release() {
        if (done) return;
        done = true;
        if (agentKey) down(agentKey);
        if (connectionKey) down(connectionKey);
      },
    };
  }

  function refused(r: Refusal, specs: readonly BucketSpec[], permit: Permit): never {
    permit.release();
    const agent = specs[r.index]!.key.startsWith('a:');
    const spec = specs[r.index]!;
    throw rateLimited(
      agent ? 'agent_rate' : 'connection_rate',
      r.waitMs / 1000,
      `${agent ? 'this agent' : 'this connection'} is over its rate of ${spec.ratePerSecond} calls per second (burst ${spec.burst})`,
    );
  }

  function admit(agentId: string, connectionId?: string): Permit | Promise<Permit> {
    const agentKey = s.agentConcurrency > 0 ? `a:${agentId}` : undefined;
    const connectionKey = connectionId !== undefined && s.connectionConcurrency > 0 ? `c:${connectionId}` : undefined;
    if (agentKey && (inFlight.get(agentKey) ?? 0) >= s.agentConcurrency) {
      throw rateLimited('agent_concurrency', 1, `this agent already has ${s.agentConcurrency} calls in flight on this instance`);
    }
    if (connectionKey && (inFlight.get(connectionKey) ?? 0) >= s.connectionConcurrency) {
      throw rateLimited('connection_concurrency', 1, `this connection already has ${s.connectionConcurrency} calls in flight on this instance`);
    }
    if (agentKey) up(agentKey);
    if (connectionKey) up(connectionKey);
    const permit = permitFor(agentKey, connectionKey);

    const specs: BucketSpec[] = [];
    if (s.agentRatePerSecond > 0) specs.push({ key: `a:${agentId}`, ratePerSecond: s.agentRatePerSecond, burst: s.agentBurst });
    if (connectionId !== undefined && s.connectionRatePerSecond > 0) {
      specs.push({ key: `c:${connectionId}`, ratePerSecond: s.connectionRatePerSecond, burst: s.connectionBurst });
    }
    if (specs.length === 0) return permit;
    let verdict: ReturnType<TokenBuckets['take']>;
    try {
      verdict = buckets.take(specs);
    } catch (err) {
      permit.release();
      throw err;
    }
    if (verdict === null) return permit;
    if (!(verdict instanceof Promise)) return refused(verdict, specs, permit);
    return verdict.then(
      (r) => (r === null ? permit : refused(r, specs, permit)),
      (err: unknown) => {
        permit.release();
        throw err;
      },
    );
  }

  return {
    /** Where the rates are kept. */
    kind: buckets.kind,
    admit,
    /** Calls in flight on this instance for an agent or connection id (for tests and metrics). */
    inFlight: (kind: 'agent' | 'connection', id: string) => inFlight.get(`${kind === 'agent' ? 'a' : 'c'}:${id}`) ?? 0,
    close: () => buckets.close(),
  };
}

export type Limits = ReturnType<typeof createLimits>;
