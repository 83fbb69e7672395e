import { sql } from 'kysely';
import type { Db } from '../store/index.ts';
import { LockTimeoutError, pollDelay, sleep, type LockOptions, type Locks } from './types.ts';

/**
 * PostgreSQL session advisory locks. The lock lives on one pooled connection held for the
 * critical section: if this process dies, PostgreSQL ends the session and frees the lock, so no
 * TTL is needed. Waiters poll pg_try_advisory_lock, so a wait is bounded and holds no lock queue.
 */
export function createPostgresLocks(db: Db): Locks {
  return {
    kind: 'postgres',
    async withLock<T>(key: string, opts: LockOptions, fn: (fence: number) => Promise<T>): Promise<T> {
      return db.connection().execute(async (conn) => {
        const deadline = Date.now() + opts.waitMs;
        for (let attempt = 0; ; attempt++) {
          const { rows } = await sql<{ ok: boolean }>`select pg_try_advisory_lock(hashtextextended(${key}, 0)) as ok`.execute(conn);
          if (rows[0]?.ok) break;
          if (Date.now() >= deadline) throw new LockTimeoutError(key);
          await sleep(pollDelay(attempt));
        }
        try {
          return await fn(0);
        } finally {
          await sql`select pg_advisory_unlock(hashtextextended(${key}, 0))`.execute(conn);
        }
      });
    },
    async close() {},
  };
}
