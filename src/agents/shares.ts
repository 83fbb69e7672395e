import { WarrantError, invalidRequest, notFound } from '../errors/index.ts';
import type { AuditLog, EventBus } from '../events/index.ts';
import type { ConnectionRow, Db, Store } from '../store/index.ts';

// Cross-owner grants. An agent acts for its owner; a connection is its owner's grant at an IdP.
// An agent may be granted a connection of another owner only once the connection's owner has
// shared it with the agent's owner: an explicit allowance, audited (`connection.shared`), and
// taken back by unsharing (`connection.unshared`), which also removes the grants it allowed.

/** A share as the API shows it. */
export interface ShareView {
  connection: string;
  /** The owner whose agents may be granted the connection. */
  owner: string;
  created_at: string;
}

export function createSharesRepo(db: Db) {
  return {
    async has(connectionId: string, owner: string, trx: Db = db): Promise<boolean> {
      const row = await trx.selectFrom('connection_shares').select('owner').where('connection_id', '=', connectionId).where('owner', '=', owner).executeTakeFirst();
      return row !== undefined;
    },

    async list(connectionId: string, trx: Db = db) {
      return trx.selectFrom('connection_shares').selectAll().where('connection_id', '=', connectionId).orderBy('created_at').orderBy('owner').execute();
    },

    /** False when the share existed already. */
    async insert(connectionId: string, owner: string, now: number, trx: Db = db): Promise<boolean> {
      const r = await trx
        .insertInto('connection_shares')
        .values({ connection_id: connectionId, owner, created_at: now })
        .onConflict((oc) => oc.columns(['connection_id', 'owner']).doNothing())
        .executeTakeFirst();
      return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
    },

    async delete(connectionId: string, owner: string, trx: Db = db): Promise<boolean> {
      const r = await trx.deleteFrom('connection_shares').where('connection_id', '=', connectionId).where('owner', '=', owner).executeTakeFirst();
      return Number(r.numDeletedRows) === 1;
    },
  };
}

export type SharesRepo = ReturnType<typeof createSharesRepo>;

const viewOf = (row: { connection_id: string; owner: string; created_at: number }): ShareView => ({
  connection: row.connection_id,
  owner: row.owner,
  created_at: new Date(Number(row.created_at)).toISOString(),
});

export function createShares(deps: {
  store: Store;
  audit: AuditLog;
  bus: EventBus;
  clock: { now(): number };
  repo: SharesRepo;
  /** Drops an agent key's cached grants (this instance; others reload within the cache TTL). */
  invalidate(keyId: string): void;
}) {
  const { store, audit, bus, clock, repo } = deps;

  async function connectionOf(id: string, trx?: Db): Promise<ConnectionRow> {
    const row = await store.connections.get(id, trx);
    if (!row) throw notFound(`connection ${id}`);
    return row;
  }

  return {
    /**
     * Lets agents of `owner` be granted the connection. Idempotent: sharing again answers the
     * existing share (`created: false`) and writes no second audit entry.
     */
    async share(connectionId: string, owner: string, actor = 'admin'): Promise<ShareView & { created: boolean }> {
      const now = clock.now();
      const { share, created, entries } = await store.transaction(async (trx) => {
        const connection = await connectionOf(connectionId, trx);
        if (connection.status === 'revoked') throw new WarrantError('conflict', `connection ${connectionId} is revoked`);
        if (owner === connection.owner) throw invalidRequest('owner', `is the connection's own owner; its agents need no share`);
        const created = await repo.insert(connectionId, owner, now, trx);
        const share = (await repo.list(connectionId, trx)).find((s) => s.owner === owner)!;
        const entries = created
          ? await audit.append({ type: 'connection.shared', actor, subject: `connection:${connectionId}`, data: { owner: connection.owner, shared_with: owner } }, trx)
          : [];
        return { share, created, entries };
      });
      bus.publish(entries);
      return { ...viewOf(share), created };
    },

    async list(connectionId: string): Promise<ShareView[]> {
      await connectionOf(connectionId);
      return (await repo.list(connectionId)).map(viewOf);
    },

    /**
     * Takes the allowance back and removes every grant on the connection held by an agent of
     * `owner`: they stop working at once on this instance, within the cache TTL on others.
     */
    async unshare(connectionId: string, owner: string, actor = 'admin'): Promise<{ connection: string; owner: string; grants_removed: string[] }> {
      const { removed, entries } = await store.transaction(async (trx) => {
        const connection = await connectionOf(connectionId, trx);
        if (!(await repo.delete(connectionId, owner, trx))) throw notFound(`share of connection ${connectionId} with ${owner}`);
        const removed = await trx
          .selectFrom('grants')
          .innerJoin('agents', 'agents.id', 'grants.agent_id')
          .select(['grants.id as grant_id', 'agents.id as agent_id', 'agents.key_id'])
          .where('grants.connection_id', '=', connectionId)
          .where('agents.owner', '=', owner)
          .orderBy('agents.id')
          .execute();
        if (removed.length) await trx.deleteFrom('grants').where('id', 'in', removed.map((r) => r.grant_id)).execute();
        const agents = removed.map((r) => r.agent_id);
        const entries = await audit.append(
          { type: 'connection.unshared', actor, subject: `connection:${connectionId}`, data: { owner: connection.owner, shared_with: owner, grants_removed: agents } },
          trx,
        );
        return { removed, entries };
      });
      for (const r of removed) deps.invalidate(r.key_id);
      bus.publish(entries);
      return { connection: connectionId, owner, grants_removed: removed.map((r) => r.agent_id) };
    },
  };
}

export type Shares = ReturnType<typeof createShares>;
