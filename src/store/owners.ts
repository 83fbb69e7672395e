import { sql, type Selectable } from 'kysely';
import type { Db, Dialect } from './db.ts';
import type { OwnersTable } from './schema.ts';

export type OwnerRow = Selectable<OwnersTable>;

/** An owner with how many agents (not revoked) and connections it holds now. */
export interface OwnerWithCounts extends OwnerRow {
  agents: number;
  connections: number;
}

export interface OwnerFilter {
  status?: OwnersTable['status'];
  /** Owners whose id sorts after this one (the previous page's last id). */
  after?: string;
  limit?: number;
}

/** The people connections and agents belong to; an owner row appears the first time it is named. */
export function createOwnersRepo(db: Db, dialect: Dialect = 'sqlite') {
  const counted = (trx: Db) =>
    trx
      .selectFrom('owners')
      .selectAll('owners')
      .select((eb) => [
        eb
          .selectFrom('agents')
          .select(sql<number>`count(*)`.as('n'))
          .whereRef('agents.owner', '=', 'owners.id')
          .where('agents.status', '!=', 'revoked')
          .as('agents'),
        eb.selectFrom('connections').select(sql<number>`count(*)`.as('n')).whereRef('connections.owner', '=', 'owners.id').as('connections'),
      ]);
  const withNumbers = (r: OwnerRow & { agents: unknown; connections: unknown }): OwnerWithCounts => ({ ...r, agents: Number(r.agents ?? 0), connections: Number(r.connections ?? 0) });

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

    /**
     * `ensure`, then the owner's row locked until `trx` ends (PostgreSQL `FOR UPDATE`; SQLite
     * transactions hold the write lock already). What creates an agent or a connection for an
     * owner takes it, and so does offboarding: either the offboarding waits for the creation and
     * then finds what it made, or the creation waits and finds the owner offboarded.
     */
    async claim(owner: string, now: number, trx: Db): Promise<OwnerRow> {
      await this.ensure(owner, now, trx);
      const q = trx.selectFrom('owners').selectAll().where('id', '=', owner);
      return (dialect === 'postgres' ? await q.forUpdate().executeTakeFirst() : await q.executeTakeFirst())!;
    },

    /** Marks the owner offboarded (first time only); true when this call did. */
    async markOffboarded(owner: string, now: number, trx: Db = db): Promise<boolean> {
      const r = await trx.updateTable('owners').set({ status: 'offboarded', offboarded_at: now }).where('id', '=', owner).where('status', '=', 'active').executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    async getWithCounts(owner: string, trx: Db = db): Promise<OwnerWithCounts | undefined> {
      const row = await counted(trx).where('owners.id', '=', owner).executeTakeFirst();
      return row ? withNumbers(row) : undefined;
    },

    /** Owners by id, a page at a time. */
    async list(filter: OwnerFilter = {}, trx: Db = db): Promise<OwnerWithCounts[]> {
      let q = counted(trx);
      if (filter.status) q = q.where('owners.status', '=', filter.status);
      if (filter.after !== undefined) q = q.where('owners.id', '>', filter.after);
      return (await q.orderBy('owners.id').limit(filter.limit ?? 100).execute()).map(withNumbers);
    },
  };
}

export type OwnersRepo = ReturnType<typeof createOwnersRepo>;
