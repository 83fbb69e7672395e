import type { Db } from './db.ts';

/** A current lease: `instance` may seal with `key` until `until` (epoch ms). */
export interface KeyLease {
  key: string;
  instance: string;
  until: number;
}

/** Which key-encryption keys have been used, which are retired (no secret is wrapped by them), and who seals with which. */
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

    /** Records that `instance` seals (or sealed) with `key` and may until `until`. */
    async stampUsage(instance: string, key: string, seenAt: number, until: number, trx: Db = db): Promise<void> {
      await trx
        .insertInto('key_usage')
        .values({ instance_id: instance, key_id: key, seen_at: seenAt, used_until: until })
        .onConflict((oc) => oc.columns(['instance_id', 'key_id']).doUpdateSet({ seen_at: seenAt, used_until: until }))
        .execute();
    },
    /** An instance that stopped cleanly seals with nothing any more. */
    async releaseUsage(instance: string, trx: Db = db): Promise<void> {
      await trx.deleteFrom('key_usage').where('instance_id', '=', instance).execute();
    },
    /** Leases on any of `keys` still current at `now`, longest first; expired ones are swept. */
    async leases(keys: readonly string[], now: number, trx: Db = db): Promise<KeyLease[]> {
      await trx.deleteFrom('key_usage').where('used_until', '<=', now).execute();
      if (!keys.length) return [];
      const rows = await trx
        .selectFrom('key_usage')
        .select(['key_id', 'instance_id', 'used_until'])
        .where('key_id', 'in', [...keys])
        .where('used_until', '>', now)
        .orderBy('used_until', 'desc')
        .execute();
      return rows.map((r) => ({ key: r.key_id, instance: r.instance_id, until: r.used_until }));
    },
  };
}

export type KeysRepo = ReturnType<typeof createKeysRepo>;
