import type { Db } from './db.ts';
import type { ConnectionPatch, ConnectionRow, ConnectionStatus, NewConnectionRow } from './schema.ts';

export interface ConnectionFilter {
  owner?: string;
  status?: ConnectionStatus;
  provider?: string;
  limit?: number;
}

export function createConnectionsRepo(db: Db) {
  return {
    async insert(row: NewConnectionRow, trx: Db = db): Promise<void> {
      await trx.insertInto('connections').values(row).execute();
    },

    async get(id: string, trx: Db = db): Promise<ConnectionRow | undefined> {
      return trx.selectFrom('connections').selectAll().where('id', '=', id).executeTakeFirst();
    },

    async list(filter: ConnectionFilter = {}, trx: Db = db): Promise<ConnectionRow[]> {
      let q = trx.selectFrom('connections').selectAll();
      if (filter.owner) q = q.where('owner', '=', filter.owner);
      if (filter.status) q = q.where('status', '=', filter.status);
      if (filter.provider) q = q.where('provider', '=', filter.provider);
      return q.orderBy('created_at').orderBy('id').limit(filter.limit ?? 1000).execute();
    },

    /**
     * Compare-and-swap on `version` (and, when given, the lock's fencing token): false when
     * another writer got there first or a newer lock holder already wrote.
     */
    async updateIfVersion(id: string, version: number, patch: ConnectionPatch, trx: Db = db, fence?: number): Promise<boolean> {
      let q = trx
        .updateTable('connections')
        .set({ ...patch, version: version + 1, ...(fence ? { refresh_fence: fence } : {}) })
        .where('id', '=', id)
        .where('version', '=', version);
      if (fence) q = q.where('refresh_fence', '<=', fence);
      const r = await q.executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    /**
     * Claims up to `limit` connections whose refresh is due, pushing their due time `leaseMs`
     * ahead so no other scheduler picks them meanwhile. On PostgreSQL, FOR UPDATE SKIP LOCKED
     * lets several instances claim disjoint sets at once. The scan walks the refresh_due_at
     * index, so its cost follows the number of due rows, not the table's size.
     */
    async claimDue(now: number, limit: number, leaseMs: number, dialect: 'sqlite' | 'postgres'): Promise<ConnectionRow[]> {
      // One statement, one round trip: pick the due ids and push their due time together.
      return db
        .updateTable('connections')
        .set({ refresh_due_at: now + leaseMs })
        .where('id', 'in', (eb) => {
          let pick = eb
            .selectFrom('connections')
            .select('id')
            .where('refresh_due_at', '<=', now)
            .where('status', 'in', ['active', 'error'])
            .orderBy('refresh_due_at')
            .limit(limit);
          if (dialect === 'postgres') pick = pick.forUpdate().skipLocked();
          return pick;
        })
        .returningAll()
        .execute();
    },

    async update(id: string, patch: ConnectionPatch, trx: Db = db): Promise<void> {
      await trx
        .updateTable('connections')
        .set((eb) => ({ ...patch, version: eb('version', '+', 1) }))
        .where('id', '=', id)
        .execute();
    },

    async delete(id: string, trx: Db = db): Promise<void> {
      await trx.deleteFrom('connections').where('id', '=', id).execute();
    },
  };
}

export type ConnectionsRepo = ReturnType<typeof createConnectionsRepo>;
