import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { BucketSpec, Refusal, TokenBuckets } from './buckets.ts';

// The same all-or-none take as the in-process buckets, in one script so every instance sees one
// level per key. The clock is Redis's own (TIME), so instances with skewed clocks agree.
// KEYS[i] is a bucket; ARGV[2i-1], ARGV[2i] its rate per second and burst.
// Returns {0, 0} when a token was taken from every bucket, else {ms to wait, index of the bucket}.
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait, which = 0, 0
local level = {}
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local b = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens = burst
  if b[1] and b[2] then
    tokens = math.min(burst, tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * rate / 1000)
  end
  level[i] = tokens
  if tokens < 1 then
    local w = math.ceil((1 - tokens) * 1000 / rate)
    if w > wait then wait, which = w, i end
  end
end
if wait > 0 then return {wait, which - 1} end
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(level[i] - 1), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst * 1000 / rate) + 1000)
end
return {0, 0}
`;

export interface RedisBucketsOptions {
  url: string;
  /** Prefix of every key (tests use a unique one). */
  prefix?: string;
  /** Where takes go while Redis cannot answer: the limits then hold per instance. */
  fallback: TokenBuckets;
  logger?: Logger;
  /** Longest wait for Redis on a call before the fallback answers it. */
  timeoutMs?: number;
  /** After a failure, calls go to the fallback this long before Redis is tried again. */
  retryAfterMs?: number;
  now?: () => number;
}

type TakeCommand = (numKeys: number, ...args: (string | number)[]) => Promise<[number, number]>;

/**
 * Buckets in Redis, one EVALSHA per call, shared by every instance on that Redis. Redis being
 * slow or down never fails a call: the in-process fallback answers it (the limits then hold per
 * instance) and Redis is tried again a little later.
 */
export function createRedisBuckets(opts: RedisBucketsOptions): TokenBuckets {
  const prefix = opts.prefix ?? 'warrant:rate:';
  const now = opts.now ?? Date.now;
  const retryAfterMs = opts.retryAfterMs ?? 1_000;
  const redis = new Redis(opts.url, { maxRetriesPerRequest: 1, commandTimeout: opts.timeoutMs ?? 250, lazyConnect: false });
  redis.on('error', () => {
    // Surfaces on the calls, which fall back; ioredis reconnects by itself.
  });
  redis.defineCommand('warrantTake', { lua: TAKE });
  const takeCommand = (redis as unknown as { warrantTake: TakeCommand }).warrantTake.bind(redis);
  let downUntil = 0;

  async function remote(specs: readonly BucketSpec[]): Promise<Refusal | null> {
    const args: (string | number)[] = specs.map((s) => prefix + s.key);
    for (const s of specs) args.push(s.ratePerSecond, s.burst);
    try {
      const [waitMs, index] = await takeCommand(specs.length, ...args);
      return waitMs > 0 ? { waitMs, index } : null;
    } catch (err) {
      if (now() >= downUntil) opts.logger?.warn({ err: (err as Error).message }, 'rate limits: Redis did not answer; limits hold per instance until it does');
      downUntil = now() + retryAfterMs;
      return opts.fallback.take(specs);
    }
  }

  return {
    kind: 'redis',
    take(specs) {
      if (specs.length === 0) return null;
      if (now() < downUntil) return opts.fallback.take(specs);
      return remote(specs);
    },
    async close() {
      redis.disconnect();
      await opts.fallback.close();
    },
  };
}
