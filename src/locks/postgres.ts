import type pg from 'pg';
import { LockTimeoutError, pollDelay, sleep, type LockLease, type LockOptions, type Locks } from './types.ts';

const TRY = 'select pg_try_advisory_lock(hashtextextended($1, 0)) as ok';
const UNLOCK = 'select pg_advisory_unlock(hashtextextended($1, 0))';

/**
 * PostgreSQL session advisory locks, on a pool of their own. A holder keeps one lock connection
 * for its critical section and does its work through the store's pool; a waiter holds no
 * connection between polls. So no holder ever waits for a connection that a waiter holds: the
 * deadlock of one shared pool (every connection held by a waiter, the holder starved) cannot
 * happen, whatever the number of connections refreshing at once. If this process dies,
 * PostgreSQL ends the session and frees the lock, so no TTL is needed.
 */
export function createPostgresLocks(pool: pg.Pool): Locks {
  async function acquire(key: string, deadline: number): Promise<pg.PoolClient> {
    for (let attempt = 0; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        // The lock pool is saturated by holders (or the database is away) past its acquire timeout.
        if (Date.now() >= deadline) throw new LockTimeoutError(key, { cause: err });
        await sleep(pollDelay(attempt));
        continue;
      }
      let ok = false;
      try {
        ok = (await client.query<{ ok: boolean }>(TRY, [key])).rows[0]?.ok === true;
      } catch (err) {
        client.release(err as Error);
        throw err;
      }
      if (ok) return client;
      client.release();
      if (Date.now() >= deadline) throw new LockTimeoutError(key);
      await sleep(pollDelay(attempt));
    }
  }

  return {
    kind: 'postgres',
    async withLock<T>(key: string, opts: LockOptions, fn: (lease: LockLease) => Promise<T>): Promise<T> {
      const client = await acquire(key, Date.now() + opts.waitMs);
      // A terminated backend takes the lock with it: tell the holder.
      const lost = new AbortController();
      const onError = () => lost.abort(new Error(`lock session for ${key} ended`));
      client.on('error', onError);
      try {
        return await fn({ signal: lost.signal });
      } finally {
        client.off('error', onError);
        try {
          await client.query(UNLOCK, [key]);
          client.release();
        } catch (err) {
          // The session is gone (terminated backend): so is its lock. Drop the client.
          client.release(err as Error);
        }
      }
    },
    async close() {
      await pool.end();
    },
  };
}
