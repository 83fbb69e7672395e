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

    /** Compare-and-swap on `version`: false when another writer got there first. */
    async updateIfVersion(id: string, version: number, patch: ConnectionPatch, trx: Db = db): Promise<boolean> {
      const r = await trx
        .updateTable('connections')
        .set({ ...patch, version: version + 1 })
        .where('id', '=', id)
        .where('version', '=', version)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
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
