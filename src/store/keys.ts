import type { Db } from './db.ts';

/** Which key-encryption keys have been used, and which are retired (no secret is wrapped by them). */
export function createKeysRepo(db: Db) {
  return {
    async list(trx: Db = db) {
      return trx.selectFrom('keys').selectAll().orderBy('created_at').execute();
    },
    async markActive(id: string, now: number, trx: Db = db): Promise<void> {
      await trx
        .insertInto('keys')
        .values({ id, status: 'active', created_at: now, retired_at: null })
        .onConflict((oc) => oc.column('id').doUpdateSet({ status: 'active', retired_at: null }))
        .execute();
    },
    async retire(id: string, now: number, trx: Db = db): Promise<void> {
      await trx.updateTable('keys').set({ status: 'retired', retired_at: now }).where('id', '=', id).execute();
    },
  };
}

export type KeysRepo = ReturnType<typeof createKeysRepo>;
