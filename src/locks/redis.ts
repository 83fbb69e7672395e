import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { LockServiceUnavailableError, LockTimeoutError, pollDelay, sleep, type LockLease, type LockOptions, type Locks } from './types.ts';

// Release and extend only if we still own the lock (the value is our random owner token).
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const EXTEND = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/**
 * Redis locks: SET NX PX with a random owner token, kept alive while the holder works, released
 * by compare-and-delete. A keep-alive that fails or finds the key gone (a FLUSHALL, a restart, a
 * failover) aborts the holder's lease signal. No fence comes from Redis: a counter in a store
 * that can be reset is no fence. The store's claim on the connection is (tokens/service.ts).
 */
export function createRedisLocks(url: string, prefix = 'warrant:lock:'): Locks {
  const redis = new Redis(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false });
  redis.on('error', () => {
    // Connection errors surface on the commands that need Redis; ioredis reconnects by itself.
  });
  return {
    kind: 'redis',
    async withLock<T>(key: string, opts: LockOptions, fn: (lease: LockLease) => Promise<T>): Promise<T> {
      const name = prefix + key;
      const owner = randomBytes(16).toString('hex');
      const deadline = Date.now() + opts.waitMs;
      for (let attempt = 0; ; attempt++) {
        let got = false;
        try {
          got = (await redis.set(name, owner, 'PX', opts.ttlMs, 'NX')) === 'OK';
        } catch (err) {
          // Redis is away: nothing is held; the caller may lock elsewhere (locks/fallback.ts).
          throw new LockServiceUnavailableError(key, { cause: err });
        }
        if (got) break;
        if (Date.now() >= deadline) throw new LockTimeoutError(key);
        await sleep(pollDelay(attempt));
      }
      const lost = new AbortController();
      const keepAlive = setInterval(() => {
        redis.eval(EXTEND, 1, name, owner, String(opts.ttlMs)).then(
          (extended) => {
            if (Number(extended) !== 1) lost.abort(new Error(`lock ${key} was lost`));
          },
          (err) => lost.abort(err),
        );
      }, Math.max(50, Math.floor(opts.ttlMs / 3)));
      keepAlive.unref();
      try {
        return await fn({ signal: lost.signal });
      } finally {
        clearInterval(keepAlive);
        await redis.eval(RELEASE, 1, name, owner).catch(() => {});
      }
    },
    async close() {
      redis.disconnect();
    },
  };
}
