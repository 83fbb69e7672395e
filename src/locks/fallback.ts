import type { Logger } from 'pino';
import { LockServiceUnavailableError, type LockLease, type LockOptions, type Locks } from './types.ts';

/**
 * Redis locks with a fallback: while Redis cannot be reached, locks are taken from `fallback`
 * (PostgreSQL advisory locks, or in-process), and Redis is tried again a second later. Two
 * instances may then lock through different services for a moment; the store's claim on each
 * connection (tokens/service.ts) keeps their refreshes apart regardless.
 */
export function withFallback(primary: Locks, fallback: Locks, logger?: Logger, retryAfterMs = 1_000): Locks {
  let downUntil = 0;
  return {
    kind: primary.kind,
    async withLock<T>(key: string, opts: LockOptions, fn: (lease: LockLease) => Promise<T>): Promise<T> {
      if (Date.now() >= downUntil) {
        try {
          return await primary.withLock(key, opts, fn);
        } catch (err) {
          if (!(err instanceof LockServiceUnavailableError)) throw err;
          if (downUntil === 0 || Date.now() >= downUntil) logger?.warn({ lock: primary.kind, fallback: fallback.kind }, 'lock service unreachable; using the fallback locks');
          downUntil = Date.now() + retryAfterMs;
        }
      }
      return fallback.withLock(key, opts, fn);
    },
    async close() {
      await Promise.all([primary.close(), fallback.close()]);
    },
  };
}
