import type { Db } from './db.ts';
import type { OwnersTable } from './schema.ts';
import type { Selectable } from 'kysely';

export type OwnerRow = Selectable<OwnersTable>;

/** The people connections and agents belong to; an owner row appears the first time it is named. */
export function createOwnersRepo(db: Db) {
  return {
    /** Records `owner` as an active owner unless it is known already (its status is left as it is). */
    async ensure(owner: string, now: number, trx: Db = db): Promise<void> {
      await trx
        .insertInto('owners')
        .values({ id: owner, email: owner.includes('@') ? owner : null, status: 'active', created_at: now, offboarded_at: null })
        .onConflict((oc) => oc.column('id').doNothing())
        .execute();
    },

    async get(owner: string, trx: Db = db): Promise<OwnerRow | undefined> {
      return trx.selectFrom('owners').selectAll().where('id', '=', owner).executeTakeFirst();
    },
  };
}

export type OwnersRepo = ReturnType<typeof createOwnersRepo>;
