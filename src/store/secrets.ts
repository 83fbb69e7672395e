import type { Db } from './db.ts';
import type { SecretRow } from './schema.ts';

export interface SecretKey {
  scope: string;
  ref: string;
  field: string;
}

/** Raw sealed rows; `vault.ts` is the only caller that seals and opens them. */
export function createSecretsRepo(db: Db) {
  return {
    async get(key: SecretKey, trx: Db = db): Promise<SecretRow | undefined> {
      return trx
        .selectFrom('secrets')
        .selectAll()
        .where('scope', '=', key.scope)
        .where('ref', '=', key.ref)
        .where('field', '=', key.field)
        .executeTakeFirst();
    },

    async getAll(scope: string, ref: string, trx: Db = db): Promise<SecretRow[]> {
      return trx.selectFrom('secrets').selectAll().where('scope', '=', scope).where('ref', '=', ref).execute();
    },

    async upsert(row: SecretRow, trx: Db = db): Promise<void> {
      await trx
        .insertInto('secrets')
        .values(row)
        .onConflict((oc) =>
          oc.columns(['scope', 'ref', 'field']).doUpdateSet({
            kek_id: row.kek_id,
            wrapped_key: row.wrapped_key,
            ciphertext: row.ciphertext,
            updated_at: row.updated_at,
          }),
        )
        .execute();
    },

    /** Inserts unless a row with this key exists (never overwrites); whether this call inserted it. */
    async insertIfAbsent(row: SecretRow, trx: Db = db): Promise<boolean> {
      const r = await trx
        .insertInto('secrets')
        .values(row)
        .onConflict((oc) => oc.columns(['scope', 'ref', 'field']).doNothing())
        .executeTakeFirst();
      return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
    },

    async delete(key: Partial<SecretKey> & { scope: string; ref: string }, trx: Db = db): Promise<void> {
      let q = trx.deleteFrom('secrets').where('scope', '=', key.scope).where('ref', '=', key.ref);
      if (key.field) q = q.where('field', '=', key.field);
      await q.execute();
    },

    /** A page of rows whose data key is wrapped by a key other than `activeKekId`. */
    async notWrappedBy(activeKekId: string, limit: number, trx: Db = db): Promise<SecretRow[]> {
      return trx.selectFrom('secrets').selectAll().where('kek_id', '!=', activeKekId).limit(limit).execute();
    },

    /** Swaps the wrapped key only if nobody rewrote the row meanwhile (compare on the old wrap). */
    async replaceWrap(row: SecretRow, kekId: string, wrappedKey: string, trx: Db = db): Promise<boolean> {
      const r = await trx
        .updateTable('secrets')
        .set({ kek_id: kekId, wrapped_key: wrappedKey })
        .where('scope', '=', row.scope)
        .where('ref', '=', row.ref)
        .where('field', '=', row.field)
        .where('wrapped_key', '=', row.wrapped_key)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    async countByKek(trx: Db = db): Promise<Map<string, number>> {
      const rows = await trx
        .selectFrom('secrets')
        .select(['kek_id', (eb) => eb.fn.countAll<number>().as('n')])
        .groupBy('kek_id')
        .execute();
      return new Map(rows.map((r) => [r.kek_id, Number(r.n)]));
    },
  };
}

export type SecretsRepo = ReturnType<typeof createSecretsRepo>;
