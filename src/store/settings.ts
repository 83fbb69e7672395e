import type { Db } from './db.ts';

/** Small named values Warrant keeps for itself (the admin token's hash, …). */
export function createSettingsRepo(db: Db) {
  return {
    async get(name: string, trx: Db = db): Promise<string | undefined> {
      const row = await trx.selectFrom('settings').select('value').where('name', '=', name).executeTakeFirst();
      return row?.value;
    },
    async set(name: string, value: string, now: number, trx: Db = db): Promise<void> {
      await trx
        .insertInto('settings')
        .values({ name, value, updated_at: now })
        .onConflict((oc) => oc.column('name').doUpdateSet({ value, updated_at: now }))
        .execute();
    },
    /** Sets the value only if none is stored; true when this call stored it (first start wins). */
    async setIfAbsent(name: string, value: string, now: number, trx: Db = db): Promise<boolean> {
      const r = await trx
        .insertInto('settings')
        .values({ name, value, updated_at: now })
        .onConflict((oc) => oc.column('name').doNothing())
        .executeTakeFirst();
      return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
    },
  };
}

export type SettingsRepo = ReturnType<typeof createSettingsRepo>;
