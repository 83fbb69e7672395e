import { sql, type ExpressionBuilder, type Insertable } from 'kysely';
import type { AgentRow, AgentsTable, Database, Db, GrantRow, GrantsTable } from '../store/index.ts';

// Store access for agents and their grants. Every method takes an optional transaction so an
// agent, its grants and its audit entry commit together.

export type AgentStatusFilter = 'active' | 'expired' | 'revoked';

export interface AgentFilter {
  owner?: string;
  status?: AgentStatusFilter;
  limit?: number;
}

export type OrphanReason = 'owner_offboarded' | 'no_usable_connection' | 'expired';

export interface OrphanRow extends AgentRow {
  reasons: OrphanReason[];
}

/** Connection statuses an agent's grant can no longer be served from without the owner. */
export const UNUSABLE_CONNECTION_STATUSES = ['revoked', 'reauth_required'] as const;

const DEFAULT_LIMIT = 1000;

/** The three orphan conditions, as SQL over `agents`: used both to select flags and to filter. */
function orphanConditions(eb: ExpressionBuilder<Database, 'agents'>, now: number) {
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
    expired: eb.and([eb('agents.expires_at', 'is not', null), eb('agents.expires_at', '<=', now)]),
  };
}

export function createAgentsRepo(db: Db) {
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
      else if (filter.status === 'active') {
        q = q.where('status', '=', 'active').where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]));
      } else if (filter.status === 'expired') q = q.where('status', '=', 'active').where('expires_at', '<=', now);
      return q.orderBy('created_at').orderBy('id').limit(filter.limit ?? DEFAULT_LIMIT).execute();
    },

    /**
     * Agents not revoked that have lost their reason to exist: owner offboarded, no usable
     * connection left among their grants, or past their expiry. Evaluated in SQL, so the limit
     * applies to orphans, not to the agents scanned.
     */
    async orphans(filter: { owner?: string; limit?: number }, now: number, trx: Db = db): Promise<OrphanRow[]> {
      let q = trx
        .selectFrom('agents')
        .selectAll('agents')
        .select((eb) => {
          const c = orphanConditions(eb, now);
          return [c.owner_offboarded.as('owner_offboarded'), c.no_usable_connection.as('no_usable_connection'), c.expired.as('expired')];
        })
        .where('agents.status', '=', 'active')
        .where((eb) => {
          const c = orphanConditions(eb, now);
          return eb.or([c.owner_offboarded, c.no_usable_connection, c.expired]);
        });
      if (filter.owner) q = q.where('agents.owner', '=', filter.owner);
      const rows = await q.orderBy('agents.created_at').orderBy('agents.id').limit(filter.limit ?? DEFAULT_LIMIT).execute();
      // SQLite answers 0/1, PostgreSQL booleans.
      return rows.map(({ owner_offboarded, no_usable_connection, expired, ...agent }) => ({
        ...agent,
        reasons: [
          ...(Number(owner_offboarded) ? (['owner_offboarded'] as const) : []),
          ...(Number(no_usable_connection) ? (['no_usable_connection'] as const) : []),
          ...(Number(expired) ? (['expired'] as const) : []),
        ],
      }));
    },

    /** Active → revoked; false when the agent was revoked already (by this or another caller). */
    async markRevoked(id: string, now: number, trx: Db = db): Promise<boolean> {
      const r = await trx.updateTable('agents').set({ status: 'revoked', revoked_at: now }).where('id', '=', id).where('status', '=', 'active').executeTakeFirst();
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
