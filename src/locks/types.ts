export interface LockOptions {
  /** How long the lock lives if its holder dies without releasing it. */
  ttlMs: number;
  /** How long to wait for it before giving up with LockTimeoutError. */
  waitMs: number;
}

/** What a holder learns about its lock while it holds it. */
export interface LockLease {
  /**
   * Aborted when the lock may no longer be held (a Redis keep-alive failed, the PostgreSQL lock
   * session died). The holder must not start an IdP call after that; its write is still guarded
   * by the store's own claim (connections.refresh_fence), which no lock-service failure resets.
   */
  signal: AbortSignal;
}

/**
 * Mutual exclusion per key, across whatever this implementation spans (one process, one
 * database, one Redis). A lock keeps the IdP from seeing concurrent refreshes in the common
 * case; the store's claim (fence + lease) is what stays correct when the lock service fails.
 */
export interface Locks {
  readonly kind: 'memory' | 'postgres' | 'redis';
  withLock<T>(key: string, opts: LockOptions, fn: (lease: LockLease) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A lease for locks that cannot be lost while the process lives. */
export const steadyLease = (): LockLease => ({ signal: new AbortController().signal });

export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
  constructor(readonly key: string, options?: { cause?: unknown }) {
    super(`timed out waiting for lock ${key}`, options);
  }
}

/** The lock service itself cannot be reached (nothing was acquired, `fn` did not run). */
export class LockServiceUnavailableError extends Error {
  override name = 'LockServiceUnavailableError';
  constructor(readonly key: string, options?: { cause?: unknown }) {
    super(`the lock service is unreachable (lock ${key})`, options);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll delay for waiters: short at first, growing, with jitter so waiters do not stampede. */
export const pollDelay = (attempt: number) => Math.min(100, 5 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2);
