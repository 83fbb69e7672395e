import type { Db } from './db.ts';
import { hasConnectionSecret } from './connections.ts';
import type { ConnectionRow, CredentialRotationRow, CredentialRotationsTable } from './schema.ts';

type Kind = CredentialRotationsTable['kind'];
type Patch = Partial<Omit<CredentialRotationRow, 'kind' | 'ref'>>;
/** Column values a conditional update expects to find (null compares with IS NULL). */
type Expect = Partial<Pick<CredentialRotationRow, 'state' | 'started_at' | 'fingerprint' | 'notice' | 'public_key'>>;

/** A connection with whether the secret its rotation is about is sealed (refresh token or private key). */
export type RotationCandidate = ConnectionRow & { has_secret: boolean };

/** Rotation bookkeeping (rotation-schedules.ts). Every write that must happen once is conditional. */
export function createRotationsRepo(db: Db) {
  return {
    async get(kind: Kind, ref: string, trx: Db = db): Promise<CredentialRotationRow | undefined> {
      return trx.selectFrom('credential_rotations').selectAll().where('kind', '=', kind).where('ref', '=', ref).executeTakeFirst();
    },

    async list(kind: Kind, opts: { states?: CredentialRotationRow['state'][]; refs?: string[] } = {}, trx: Db = db): Promise<CredentialRotationRow[]> {
      if (opts.refs && !opts.refs.length) return [];
      return trx
        .selectFrom('credential_rotations')
        .selectAll()
        .where('kind', '=', kind)
        .$if(!!opts.states, (q) => q.where('state', 'in', opts.states!))
        .$if(!!opts.refs, (q) => q.where('ref', 'in', opts.refs!))
        .orderBy('ref')
        .limit(5000)
        .execute();
    },

    /** Inserts unless a row for (kind, ref) exists; whether this call inserted it (one caller across instances). */
    async insertIfAbsent(row: CredentialRotationRow, trx: Db = db): Promise<boolean> {
      const r = await trx
        .insertInto('credential_rotations')
        .values(row)
        .onConflict((oc) => oc.columns(['kind', 'ref']).doNothing())
        .executeTakeFirst();
      return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
    },

    /** Updates the row only while it still holds `expect`; whether this call did (one caller across instances). */
    async updateIf(kind: Kind, ref: string, expect: Expect, patch: Patch, trx: Db = db): Promise<boolean> {
      let q = trx.updateTable('credential_rotations').set(patch).where('kind', '=', kind).where('ref', '=', ref);
      for (const [column, value] of Object.entries(expect) as [keyof Expect, string | number | null][]) {
        q = value === null ? q.where(column, 'is', null) : q.where(column, '=', value as never);
      }
      const r = await q.executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    async delete(kind: Kind, ref: string, trx: Db = db): Promise<void> {
      await trx.deleteFrom('credential_rotations').where('kind', '=', kind).where('ref', '=', ref).execute();
    },

    /**
     * Live connections of `providers` whose credential was issued at or before `issuedBefore`
     * (all of them when undefined), oldest first, with whether `secret` is sealed for them. Walks
     * the (provider, credential_issued_at) index: the cost follows the credentials due.
     */
    async candidates(
      providers: readonly string[],
      secret: 'refresh_token' | 'private_key',
      opts: { issuedBefore?: number; ids?: string[]; limit: number },
      trx: Db = db,
    ): Promise<RotationCandidate[]> {
      if (!providers.length || (opts.ids && !opts.ids.length)) return [];
      const rows = await trx
        .selectFrom('connections')
        .selectAll('connections')
        .select((eb) => hasConnectionSecret(eb, secret).as('has_secret'))
        .where('connections.provider', 'in', providers)
        .where('connections.status', 'in', ['active', 'error'])
        .$if(opts.issuedBefore !== undefined, (q) =>
          q.where((eb) => eb(eb.fn.coalesce('connections.credential_issued_at', 'connections.created_at'), '<=', opts.issuedBefore!)),
        )
        .$if(!!opts.ids, (q) => q.where('connections.id', 'in', opts.ids!))
        .orderBy('connections.credential_issued_at')
        .orderBy('connections.id')
        .limit(opts.limit)
        .execute();
      // SQLite answers EXISTS as 0/1.
      return rows.map((r) => ({ ...r, has_secret: Boolean(r.has_secret) }));
    },

    /** Records when the connection's credential was issued. Not a token write: `version` is left alone, so a refresh in flight is not undone. */
    async setCredentialIssuedAt(id: string, at: number, trx: Db = db): Promise<void> {
      await trx.updateTable('connections').set({ credential_issued_at: at }).where('id', '=', id).execute();
    },
  };
}

export type RotationsRepo = ReturnType<typeof createRotationsRepo>;
