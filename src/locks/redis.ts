import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { LockTimeoutError, pollDelay, sleep, type LockOptions, type Locks } from './types.ts';

// Release and extend only if we still own the lock (the value is our random owner token).
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const EXTEND = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/**
 * Redis locks: SET NX PX with a random owner token, kept alive while the holder works, released
 * by compare-and-delete. Each grant also takes a fencing token from a per-key counter; writers
 * persist it with their result and the store refuses a write carrying an older fence, so a
 * holder that stalled past its TTL cannot overwrite a newer holder's result.
 */
export function createRedisLocks(url: string, prefix = 'warrant:lock:'): Locks {
  const redis = new Redis(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false });
  redis.on('error', () => {
    // Connection errors surface on the commands that need Redis; ioredis reconnects by itself.
  });
  return {
    kind: 'redis',
    async withLock<T>(key: string, opts: LockOptions, fn: (fence: number) => Promise<T>): Promise<T> {
      const name = prefix + key;
      const owner = randomBytes(16).toString('hex');
      const deadline = Date.now() + opts.waitMs;
      for (let attempt = 0; ; attempt++) {
        if ((await redis.set(name, owner, 'PX', opts.ttlMs, 'NX')) === 'OK') break;
        if (Date.now() >= deadline) throw new LockTimeoutError(key);
        await sleep(pollDelay(attempt));
      }
      const fence = await redis.incr(`${name}:fence`);
      const keepAlive = setInterval(() => {
        redis.eval(EXTEND, 1, name, owner, String(opts.ttlMs)).catch(() => {});
      }, Math.max(50, Math.floor(opts.ttlMs / 3)));
      keepAlive.unref();
      try {
        return await fn(fence);
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
