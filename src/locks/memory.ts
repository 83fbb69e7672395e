import { LockTimeoutError, steadyLease, type LockLease, type LockOptions, type Locks } from './types.ts';

/** In-process locks: a promise chain per key. Enough for the embedded single-process mode. */
export function createMemoryLocks(): Locks {
  const tails = new Map<string, Promise<void>>();
  return {
    kind: 'memory',
    async withLock<T>(key: string, opts: LockOptions, fn: (lease: LockLease) => Promise<T>): Promise<T> {
      const previous = tails.get(key) ?? Promise.resolve();
      let release!: () => void;
      const mine = new Promise<void>((r) => (release = r));
      const tail = previous.then(() => mine);
      tails.set(key, tail);
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          previous,
          new Promise((_, reject) => (timer = setTimeout(() => reject(new LockTimeoutError(key)), opts.waitMs))),
        ]);
      } catch (err) {
        // Still queued behind `previous`: hand on to whoever is after us once it is done.
        release();
        throw err;
      } finally {
        clearTimeout(timer);
      }
      try {
        return await fn(steadyLease());
      } finally {
        release();
        if (tails.get(key) === tail) tails.delete(key);
      }
    },
    async close() {},
  };
}
