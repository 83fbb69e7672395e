export interface LockOptions {
  /** How long the lock lives if its holder dies without releasing it. */
  ttlMs: number;
  /** How long to wait for it before giving up with LockTimeoutError. */
  waitMs: number;
}

/**
 * Mutual exclusion per key, across whatever this implementation spans (one process, one
 * database, one Redis). `fence` grows with every grant of a key where the backend can give one
 * (Redis); 0 where the holder's session itself is the guarantee (in-process, PostgreSQL).
 */
export interface Locks {
  readonly kind: 'memory' | 'postgres' | 'redis';
  withLock<T>(key: string, opts: LockOptions, fn: (fence: number) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
  constructor(readonly key: string) {
    super(`timed out waiting for lock ${key}`);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll delay for waiters: short at first, growing, with jitter so waiters do not stampede. */
export const pollDelay = (attempt: number) => Math.min(100, 5 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2);
