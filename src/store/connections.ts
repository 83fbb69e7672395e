import type { ExpressionBuilder } from 'kysely';
import type { Db, Dialect } from './db.ts';
import { tagPredicates } from './tags.ts';
import type { TagFilter } from '../util/tags.ts';
import type { Database, ConnectionPatch, ConnectionRow, ConnectionStatus, ExpiryNotice, NewConnectionRow } from './schema.ts';

/** EXISTS: the vault holds the sealed secret `field` of the connection row in scope. */
export const hasConnectionSecret = (eb: ExpressionBuilder<Database, 'connections'>, field: string) =>
  eb.exists(
    eb
      .selectFrom('secrets')
      .select('secrets.ref')
      .where('secrets.scope', '=', 'connection')
      .whereRef('secrets.ref', '=', 'connections.id')
      .where('secrets.field', '=', field),
  );

export interface ConnectionFilter extends TagFilter {
  owner?: string;
  status?: ConnectionStatus;
  provider?: string;
  limit?: number;
}

/** A provider's documented refresh-token limits, in milliseconds (absent: none). */
export interface GrantLimits {
  provider: string;
  lifetimeMs?: number;
  idleMs?: number;
  /** A refresh-token rotation schedule where the provider cannot rotate: announced like a lifetime, from `credential_issued_at`. */
  rotationMs?: number;
}

export type GrantNearingEnd = ConnectionRow & { has_refresh_token: boolean };

/** The ids the scheduler claims next: due, live, earliest first; skipping rows another instance holds (PostgreSQL). */
export function dueIdsQuery(db: Db, now: number, limit: number, dialect: Dialect) {
  const pick = db
    .selectFrom('connections')
    .select('id')
    .where('refresh_due_at', '<=', now)
    .where('status', 'in', ['active', 'error'])
    .orderBy('refresh_due_at')
    .limit(limit);
  return dialect === 'postgres' ? pick.forUpdate().skipLocked() : pick;
}

/**
 * The scheduler's claim as one statement, one round trip: pick the due ids and push their due time
 * together. Exported as queries so the benches explain exactly what runs.
 */
export function claimDueQuery(db: Db, now: number, limit: number, leaseMs: number, dialect: Dialect) {
  return db
    .updateTable('connections')
    .set({ refresh_due_at: now + leaseMs })
    .where('id', 'in', dueIdsQuery(db, now, limit, dialect))
    .returningAll();
}

/** The earliest refresh due time among connections the scheduler would claim, as a query (see claimDueQuery). */
export function nextDueQuery(db: Db) {
  return db
    .selectFrom('connections')
    .select('refresh_due_at')
    .where('refresh_due_at', 'is not', null)
    .where('status', 'in', ['active', 'error'])
    .orderBy('refresh_due_at')
    .limit(1);
}

export function createConnectionsRepo(db: Db, dialect: Dialect = 'sqlite') {
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
      for (const p of tagPredicates('connections', filter, dialect)) q = q.where(p);
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
      const row = await nextDueQuery(trx).executeTakeFirst();
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
      return claimDueQuery(db, now, limit, leaseMs, dialect).execute();
    },

    /**
     * Live connections whose grant may die for good before `until`: granted (consented) more than
     * the provider's lifetime before it, or, where refreshing cannot keep it alive (no refresh
     * token sealed, or refreshes failing), last refreshed more than its idle timeout before it.
     * Only grants whose last notice is `page.previous`, in id order after `page.after`. Walks the
     * (provider, grant_started_at) index: the cost follows the grants near their end, not the table.
     */
    async grantsNearingEnd(
      limits: readonly GrantLimits[],
      until: number,
      limit: number,
      page: { previous: ExpiryNotice | null; after?: string },
      trx: Db = db,
    ): Promise<GrantNearingEnd[]> {
      const usable = limits.filter((l) => l.lifetimeMs || l.idleMs || l.rotationMs);
      if (!usable.length) return [];
      const rows = await trx
        .selectFrom('connections')
        .selectAll('connections')
        .select((eb) => hasConnectionSecret(eb, 'refresh_token').as('has_refresh_token'))
        .where('connections.status', 'in', ['active', 'error'])
        .where('connections.expiry_notice', page.previous === null ? 'is' : '=', page.previous)
        .$if(page.after !== undefined, (q) => q.where('connections.id', '>', page.after!))
        .where((eb) =>
          eb.or(
            usable.map((l) => {
              const near = [];
              if (l.lifetimeMs) {
                const startedBy = until - l.lifetimeMs;
                near.push(
                  eb.or([
                    eb('connections.grant_started_at', '<=', startedBy),
                    eb.and([eb('connections.grant_started_at', 'is', null), eb('connections.created_at', '<=', startedBy)]),
                  ]),
                );
              }
              if (l.idleMs) {
                near.push(
                  eb.and([
                    eb(eb.fn.coalesce('connections.last_refreshed_at', 'connections.grant_started_at', 'connections.created_at'), '<=', until - l.idleMs),
                    eb.or([
                      eb('connections.status', '=', 'error'),
                      eb('connections.failure_count', '>', 0),
                      eb.not(
                        hasConnectionSecret(eb, 'refresh_token'),
                      ),
                    ]),
                  ]),
                );
              }
              if (l.rotationMs) {
                near.push(
                  eb.and([
                    eb(eb.fn.coalesce('connections.credential_issued_at', 'connections.grant_started_at', 'connections.created_at'), '<=', until - l.rotationMs),
                    hasConnectionSecret(eb, 'refresh_token'),
                  ]),
                );
              }
              return eb.and([eb('connections.provider', '=', l.provider), eb.or(near)]);
            }),
          ),
        )
        .orderBy('connections.id')
        .limit(limit)
        .execute();
      // SQLite answers EXISTS as 0/1.
      return rows.map((r) => ({ ...r, has_refresh_token: Boolean(r.has_refresh_token) }));
    },

    /**
     * Records that `notice` was sent for the grant as it was read (`seen`): true for one caller
     * only, however many instances try at once, and never for a grant a re-connect replaced
     * meanwhile. Not a token write: `version` is left alone so a refresh in flight is not undone.
     */
    async claimExpiryNotice(id: string, notice: ExpiryNotice, seen: Pick<ConnectionRow, 'expiry_notice' | 'grant_started_at'>, trx: Db = db): Promise<boolean> {
      const r = await trx
        .updateTable('connections')
        .set({ expiry_notice: notice })
        .where('id', '=', id)
        .where('status', 'in', ['active', 'error'])
        .where('expiry_notice', seen.expiry_notice === null ? 'is' : '=', seen.expiry_notice)
        .where('grant_started_at', seen.grant_started_at === null ? 'is' : '=', seen.grant_started_at)
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
