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
      const r = await trx.updateTable('connections').set({ ...patch, version: version + 1 }).where('id', '=', id).where('version', '=', version).executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    /**
     * Claims the connection's refresh: bumps the fence and takes a lease, unless another claim's
     * lease is still live. Returns the row as claimed (its `refresh_fence` is the claim's fence).
     */
    async claimRefresh(id: string, now: number, leaseMs: number, trx: Db = db): Promise<ConnectionRow | undefined> {
      return trx
        .updateTable('connections')
        .set((eb) => ({ refresh_fence: eb('refresh_fence', '+', 1), refresh_lease_until: now + leaseMs }))
        .where('id', '=', id)
        .where((eb) => eb.or([eb('refresh_lease_until', 'is', null), eb('refresh_lease_until', '<=', now)]))
        .returningAll()
        .executeTakeFirst();
    },

    /**
     * A claimant's write: only while its claim is the current one (`fence`) and nobody else wrote
     * the row since it was claimed (`version`, e.g. an admin revoke). Ends the lease.
     */
    async updateIfClaimed(id: string, claim: { fence: number; version: number }, patch: ConnectionPatch, trx: Db = db): Promise<boolean> {
      const r = await trx
        .updateTable('connections')
        .set({ ...patch, version: claim.version + 1, refresh_lease_until: null })
        .where('id', '=', id)
        .where('refresh_fence', '=', claim.fence)
        .where('version', '=', claim.version)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    /** The earliest refresh due time among connections the scheduler would claim (null when none). */
    async nextDueAt(trx: Db = db): Promise<number | null> {
      const row = await trx
        .selectFrom('connections')
        .select('refresh_due_at')
        .where('refresh_due_at', 'is not', null)
        .where('status', 'in', ['active', 'error'])
        .orderBy('refresh_due_at')
        .limit(1)
        .executeTakeFirst();
      return row?.refresh_due_at ?? null;
    },

    /** Embedded mode at start: the one process that owns the data dir holds no claim yet; a crashed predecessor's leases end. */
    async releaseAllClaims(trx: Db = db): Promise<void> {
      await trx.updateTable('connections').set({ refresh_lease_until: null }).where('refresh_lease_until', 'is not', null).execute();
    },

    /** Keeps a live claim's lease going while its refresh runs (false: the claim was overtaken). */
    async extendClaim(id: string, fence: number, until: number, trx: Db = db): Promise<boolean> {
      const r = await trx
        .updateTable('connections')
        .set({ refresh_lease_until: until })
        .where('id', '=', id)
        .where('refresh_fence', '=', fence)
        .where('refresh_lease_until', 'is not', null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    /** Ends a claim that wrote nothing (the token was fresh after all, or the call failed early). */
    async releaseClaim(id: string, fence: number, trx: Db = db): Promise<void> {
      await trx.updateTable('connections').set({ refresh_lease_until: null }).where('id', '=', id).where('refresh_fence', '=', fence).execute();
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
