import { sql, type ExpressionBuilder, type Insertable } from 'kysely';
import { tagPredicates, type AgentRow, type AgentsTable, type Database, type Db, type Dialect, type GrantRow, type GrantsTable } from '../store/index.ts';
import type { TagFilter } from '../util/tags.ts';

// Store access for agents and their grants. Every method takes an optional transaction so an
// agent, its grants and its audit entry commit together.

export type AgentStatusFilter = 'active' | 'expired' | 'suspended' | 'revoked';

export interface AgentFilter extends TagFilter {
  owner?: string;
  status?: AgentStatusFilter;
  limit?: number;
}

export type OrphanReason = 'owner_offboarded' | 'owner_unknown' | 'no_usable_connection' | 'expired' | 'idle';

/** Every orphan reason, in the order an agent's `orphan_reasons` lists them. */
export const ORPHAN_REASONS: readonly OrphanReason[] = ['owner_offboarded', 'owner_unknown', 'no_usable_connection', 'expired', 'idle'];

export interface OrphanFilter extends TagFilter {
  owner?: string;
  limit?: number;
  /**
   * An agent unused this long (no authenticated request: `last_used_at`, or since its creation
   * when never used) is `idle`; 0 or absent: idleness is not looked at.
   */
  idleMs?: number;
  /** Only the active orphans whose `agent.orphaned` event is not sent yet (the sweep's candidates). */
  unannounced?: boolean;
}

export interface OrphanRow extends AgentRow {
  reasons: OrphanReason[];
}

/** Connection statuses an agent's grant can no longer be served from without the owner. */
export const UNUSABLE_CONNECTION_STATUSES = ['revoked', 'reauth_required'] as const;

const DEFAULT_LIMIT = 1000;

/** The orphan conditions, as SQL over `agents`: used both to select flags and to filter. */
function orphanConditions(eb: ExpressionBuilder<Database, 'agents'>, now: number, idleMs = 0) {
  const idleSince = now - idleMs;
  return {
    owner_offboarded: eb.exists(
      eb
        .selectFrom('owners')
        .select(sql<number>`1`.as('one'))
        .whereRef('owners.id', '=', 'agents.owner')
        .where('owners.status', '=', 'offboarded'),
    ),
    // No grant left that points at a connection which exists and is not revoked/reauth_required
    // (revoking a connection deletes its grants, so "no grants left" counts too). An OAuth client's
    // agent exists for its registration, not for a connection.
    no_usable_connection: eb.and([
      eb('agents.oauth_client', 'is', null),
      eb.not(
        eb.exists(
          eb
            .selectFrom('grants')
            .innerJoin('connections', 'connections.id', 'grants.connection_id')
            .select(sql<number>`1`.as('one'))
            .whereRef('grants.agent_id', '=', 'agents.id')
            .where('connections.status', 'not in', [...UNUSABLE_CONNECTION_STATUSES]),
        ),
      ),
    ]),
    // No owner row at all (an agent older than owner records, or an owner row removed by hand).
    owner_unknown: eb.not(eb.exists(eb.selectFrom('owners').select(sql<number>`1`.as('one')).whereRef('owners.id', '=', 'agents.owner'))),
    expired: eb.and([eb('agents.expires_at', 'is not', null), eb('agents.expires_at', '<=', now)]),
    // Never used and created before the idle cutoff, or last used before it. Off when idleMs is 0.
    idle:
      idleMs > 0
        ? eb.and([eb('agents.created_at', '<=', idleSince), eb.or([eb('agents.last_used_at', 'is', null), eb('agents.last_used_at', '<=', idleSince)])])
        : eb.and([eb.lit(false)]),
  };
}

/** Any orphan condition holds. */
function isOrphan(eb: ExpressionBuilder<Database, 'agents'>, now: number, idleMs = 0) {
  const c = orphanConditions(eb, now, idleMs);
  return eb.or([c.owner_offboarded, c.owner_unknown, c.no_usable_connection, c.expired, c.idle]);
}

export function createAgentsRepo(db: Db, dialect: Dialect = 'sqlite') {
  return {
    async insert(agent: Insertable<AgentsTable>, grants: Insertable<GrantsTable>[], trx: Db = db): Promise<void> {
      await trx.insertInto('agents').values(agent).execute();
      if (grants.length) await trx.insertInto('grants').values(grants).execute();
    },

    async get(id: string, trx: Db = db): Promise<AgentRow | undefined> {
      return trx.selectFrom('agents').selectAll().where('id', '=', id).executeTakeFirst();
    },

    async getByKeyId(keyId: string, trx: Db = db): Promise<AgentRow | undefined> {
      return trx.selectFrom('agents').selectAll().where('key_id', '=', keyId).executeTakeFirst();
    },

    /** Key ids of the agents created at or after `since` (of every agent when null). */
    async keyIdsSince(since: number | null, trx: Db = db): Promise<string[]> {
      let q = trx.selectFrom('agents').select('key_id');
      if (since !== null) q = q.where('created_at', '>=', since);
      return (await q.execute()).map((r) => r.key_id);
    },

    /** Grants of the given agents, grouped by agent id, in the order they were given. */
    async grantsOf(agentIds: string[], trx: Db = db): Promise<Map<string, GrantRow[]>> {
      const byAgent = new Map<string, GrantRow[]>(agentIds.map((id) => [id, []]));
      if (!agentIds.length) return byAgent;
      const rows = await trx.selectFrom('grants').selectAll().where('agent_id', 'in', agentIds).orderBy('created_at').orderBy('id').execute();
      for (const row of rows) byAgent.get(row.agent_id)?.push(row);
      return byAgent;
    },

    async list(filter: AgentFilter, now: number, trx: Db = db): Promise<AgentRow[]> {
      let q = trx.selectFrom('agents').selectAll();
      if (filter.owner) q = q.where('owner', '=', filter.owner);
      if (filter.status === 'revoked') q = q.where('status', '=', 'revoked');
      else if (filter.status === 'suspended') q = q.where('status', '=', 'suspended');
      else if (filter.status === 'active') {
        q = q.where('status', '=', 'active').where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]));
      } else if (filter.status === 'expired') q = q.where('status', '=', 'active').where('expires_at', '<=', now);
      for (const p of tagPredicates('agents', filter, dialect)) q = q.where(p);
      return q.orderBy('created_at').orderBy('id').limit(filter.limit ?? DEFAULT_LIMIT).execute();
    },

    /**
     * Agents not revoked (active or suspended) that have lost their reason to exist: owner
     * offboarded or unknown, no usable connection left among their grants, past their expiry, or
     * unused for `idleMs`. Evaluated in SQL, so the limit applies to orphans, not to the agents scanned.
     */
    async orphans(filter: OrphanFilter, now: number, trx: Db = db): Promise<OrphanRow[]> {
      const idleMs = filter.idleMs ?? 0;
      let q = trx
        .selectFrom('agents')
        .selectAll('agents')
        .select((eb) => {
          const c = orphanConditions(eb, now, idleMs);
          return [
            c.owner_offboarded.as('owner_offboarded'),
            c.owner_unknown.as('owner_unknown'),
            c.no_usable_connection.as('no_usable_connection'),
            c.expired.as('expired'),
            c.idle.as('idle'),
          ];
        })
        .where((eb) => isOrphan(eb, now, idleMs));
      q = filter.unannounced ? q.where('agents.status', '=', 'active').where('agents.orphaned_at', 'is', null) : q.where('agents.status', 'in', ['active', 'suspended']);
      if (filter.owner) q = q.where('agents.owner', '=', filter.owner);
      for (const p of tagPredicates('agents', filter, dialect)) q = q.where(p);
      const rows = await q.orderBy('agents.created_at').orderBy('agents.id').limit(filter.limit ?? DEFAULT_LIMIT).execute();
      return rows.map((row) => {
        const flags = row as unknown as Record<OrphanReason, unknown>;
        const agent = { ...row } as Record<string, unknown>;
        for (const r of ORPHAN_REASONS) delete agent[r];
        // SQLite answers 0/1, PostgreSQL booleans.
        return { ...(agent as unknown as AgentRow), reasons: ORPHAN_REASONS.filter((r) => Number(flags[r]) === 1 || flags[r] === true) };
      });
    },

    /**
     * Claims the `agent.orphaned` event of an active agent's current orphan episode: true for the
     * one caller (of any instance) that set `orphaned_at`.
     */
    async claimOrphaned(id: string, now: number, trx: Db = db): Promise<boolean> {
      const r = await trx.updateTable('agents').set({ orphaned_at: now }).where('id', '=', id).where('status', '=', 'active').where('orphaned_at', 'is', null).executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    /** Ends the orphan episode of active agents that are no longer orphans (a later one sends a new event); how many. */
    async clearRecovered(now: number, idleMs: number, trx: Db = db): Promise<number> {
      const r = await trx
        .updateTable('agents')
        .set({ orphaned_at: null })
        .where('agents.orphaned_at', 'is not', null)
        .where('agents.status', '=', 'active')
        .where((eb) => eb.not(isOrphan(eb, now, idleMs)))
        .executeTakeFirst();
      return Number(r.numUpdatedRows);
    },

    /** Active → suspended; false when the agent is not active (any more). */
    async markSuspended(id: string, now: number, reasons: readonly string[], trx: Db = db): Promise<boolean> {
      const r = await trx
        .updateTable('agents')
        .set({ status: 'suspended', suspended_at: now, suspended_reasons: JSON.stringify(reasons) })
        .where('id', '=', id)
        .where('status', '=', 'active')
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    /** Suspended → active; false when the agent is not suspended (any more). */
    async markReactivated(id: string, trx: Db = db): Promise<boolean> {
      const r = await trx
        .updateTable('agents')
        .set({ status: 'active', suspended_at: null, suspended_reasons: null })
        .where('id', '=', id)
        .where('status', '=', 'suspended')
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    /** Replaces a grant's scopes and token export in place (narrowing: the key and grant id stay). */
    async updateGrant(grantId: string, scopes: readonly string[], tokenExport: boolean, trx: Db = db): Promise<void> {
      await trx.updateTable('grants').set({ scopes: JSON.stringify(scopes), token_export: tokenExport ? 1 : 0 }).where('id', '=', grantId).execute();
    },

    async deleteGrants(grantIds: readonly string[], trx: Db = db): Promise<void> {
      if (grantIds.length) await trx.deleteFrom('grants').where('id', 'in', [...grantIds]).execute();
    },

    /** Active or suspended → revoked; false when the agent was revoked already (by this or another caller). */
    async markRevoked(id: string, now: number, trx: Db = db): Promise<boolean> {
      const r = await trx
        .updateTable('agents')
        .set({ status: 'revoked', revoked_at: now, suspended_at: null, suspended_reasons: null })
        .where('id', '=', id)
        .where('status', 'in', ['active', 'suspended'])
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    /** Records use, at most once per `minIntervalMs` across every instance writing to this store. */
    async touch(id: string, now: number, minIntervalMs: number, trx: Db = db): Promise<void> {
      await trx
        .updateTable('agents')
        .set({ last_used_at: now })
        .where('id', '=', id)
        .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<=', now - minIntervalMs)]))
        .execute();
    },
  };
}

export type AgentsRepo = ReturnType<typeof createAgentsRepo>;
