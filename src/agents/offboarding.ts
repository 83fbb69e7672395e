import type { Logger } from 'pino';
import { WarrantError, notFound } from '../errors/index.ts';
import type { AuditEntry, AuditInput, AuditLog, EventBus } from '../events/index.ts';
import type { Db, OffboardedConnectionsTable, OwnerFilter, OwnerWithCounts, Store } from '../store/index.ts';
import type { ConnectionService, RevocationReport } from '../tokens/index.ts';
import { createAgentsRepo } from './repo.ts';
import type { AgentService } from './service.ts';

// Offboarding an owner (DESIGN.md, "Owners and governance"): the cascade, in this order.
// 1. The owner is marked offboarded, and every agent of theirs revoked, in one transaction that
//    holds the owner's row (store/owners.ts `claim`): from the commit on, no agent and no
//    connection can be created for the owner, and nothing created just before is missed.
// 2. The agents' keys are dropped from the key cache of every instance (invalidation.ts): they
//    stop on the next request here, within a second everywhere. OAuth clients of Warrant's own
//    authorization server that the owner consented to or registered (headless) are agents too:
//    revoking those makes the client unknown to the token endpoint, and its JWTs stop verifying
//    within a second (authz/verify.ts).
// 3. Every upstream grant the owner connected is revoked at its IdP in the provider's revocation
//    shape and verified dead (tokens/connections.ts `revoke`: introspection, else a refresh that
//    must be refused, else an API probe that must answer 401), a few at a time, each IdP call
//    under its deadline. The outcome — how it was verified, the IdP's answer status, when — is
//    committed with the connection's deletion and its audit entry; never token material.
//    A grant not verified dead is `verified: false` with why, and one alert
//    (`connection.revocation_unverified`).
// Idempotent: a second call finds the owner offboarded and nothing left to revoke, and answers the
// recorded outcome. A revocation that failed for a transient reason keeps its connection, so a
// second call tries it again.

export type OffboardVerification = OffboardedConnectionsTable['verification'];

export interface OffboardedConnection {
  id: string;
  provider: string;
  revoked: boolean;
  verified: boolean;
  verification: OffboardVerification;
  detail: string;
  /** The HTTP status of the answer the verification rests on; null when there was none. */
  idp_status: number | null;
  checked_at: string;
}

/** POST /v1/owners/{owner}/offboard, wire names. */
export interface OffboardReport {
  owner: string;
  status: 'offboarded';
  offboarded_at: string;
  agents: { id: string; revoked: boolean }[];
  /** Of those agents, the ones that are OAuth clients of Warrant's authorization server. */
  oauth_clients: { client_id: string; agent: string; revoked: boolean }[];
  connections: OffboardedConnection[];
}

/** An owner as the admin API shows it: `agents` counts those not revoked, `connections` those held now. */
export interface OwnerView {
  id: string;
  email: string | null;
  status: 'active' | 'offboarded';
  created_at: string;
  offboarded_at: string | null;
  agents: number;
  connections: number;
}

const ownerView = (r: OwnerWithCounts): OwnerView => ({
  id: r.id,
  email: r.email,
  status: r.status,
  created_at: new Date(Number(r.created_at)).toISOString(),
  offboarded_at: r.offboarded_at === null ? null : new Date(Number(r.offboarded_at)).toISOString(),
  agents: r.agents,
  connections: r.connections,
});

export const offboardingDefaults = {
  /** Connections revoked (and verified) at once. */
  concurrency: 4,
  /** Most connections of one owner revoked by one call (a further call takes the rest). */
  maxConnections: 10_000,
};

export interface OffboardingDeps {
  store: Store;
  audit: AuditLog;
  bus: EventBus;
  clock: { now(): number };
  logger: Logger;
  agents: Pick<AgentService, 'dropKeys'>;
  connections: Pick<ConnectionService, 'revoke'>;
  options?: Partial<typeof offboardingDefaults>;
}

/** How the connection service's verification is named in the offboarding contract. */
const VERIFICATION: Record<RevocationReport['verification'], OffboardVerification> = {
  introspection: 'introspection',
  refresh_refused: 'refresh_refused',
  api_refused: 'probe_401',
  none: 'unsupported',
};

/** Runs `fn` on every item, at most `limit` at a time. */
async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export function createOffboarding(deps: OffboardingDeps) {
  const { store, audit, bus, clock, logger } = deps;
  const options = { ...offboardingDefaults, ...deps.options };
  const repo = createAgentsRepo(store.db);
  /** Offboardings in progress on this instance, per owner: a second call joins the first. */
  const running = new Map<string, Promise<OffboardReport>>();

  /** The outcome row and, when the grant is not verified dead, the alert; committed in `trx`. */
  async function record(owner: string, result: Omit<OffboardedConnection, 'checked_at'> & { checked_at: number }, trx: Db): Promise<AuditInput[]> {
    const row = {
      owner,
      provider: result.provider,
      revoked: result.revoked ? 1 : 0,
      verified: result.verified ? 1 : 0,
      verification: result.verification,
      detail: result.detail,
      idp_status: result.idp_status,
      checked_at: result.checked_at,
    };
    await trx
      .insertInto('offboarded_connections')
      .values({ connection_id: result.id, ...row })
      .onConflict((oc) => oc.column('connection_id').doUpdateSet(row))
      .execute();
    if (result.verified) return [];
    return [
      {
        type: 'connection.revocation_unverified',
        actor: 'system',
        subject: `connection:${result.id}`,
        data: { provider: result.provider, owner, revoked: result.revoked, verification: result.verification, detail: result.detail, idp_status: result.idp_status, reason: 'offboarding' },
      },
    ];
  }

  /** Step 1: the owner offboarded and every agent revoked, in one transaction. */
  async function revokeAgents(owner: string, actor: string): Promise<{ keyIds: string[]; entries: AuditEntry[] }> {
    const now = clock.now();
    return store.transaction(async (trx) => {
      if (!(await store.owners.get(owner, trx))) throw notFound(`owner ${owner}`);
      await store.owners.claim(owner, now, trx);
      const first = await store.owners.markOffboarded(owner, now, trx);
      const live = await trx.selectFrom('agents').select(['id', 'name', 'key_id']).where('owner', '=', owner).where('status', '!=', 'revoked').orderBy('created_at').execute();
      const inputs: AuditInput[] = [];
      const keyIds: string[] = [];
      for (const a of live) {
        if (!(await repo.markRevoked(a.id, now, trx))) continue;
        keyIds.push(a.key_id);
        inputs.push({ type: 'agent.revoked', actor, subject: `agent:${a.id}`, data: { name: a.name, owner, key_id: a.key_id, reason: 'owner_offboarded' } });
      }
      if (first) inputs.unshift({ type: 'owner.offboarded', actor, subject: `owner:${owner}`, data: { owner, agents_revoked: keyIds.length } });
      return { keyIds, entries: inputs.length ? await audit.append(inputs, trx) : [] };
    });
  }

  /** Step 3 for one connection. Never throws: a failure is an outcome (recorded, alerted). */
  async function revokeConnection(owner: string, id: string, provider: string, actor: string): Promise<void> {
    try {
      await deps.connections.revoke(id, actor, {
        record: (report, _row, trx) =>
          record(
            owner,
            {
              id,
              provider,
              revoked: report.revoked,
              verified: report.verified,
              verification: VERIFICATION[report.verification],
              detail: report.detail,
              idp_status: report.idp_status ?? null,
              checked_at: report.checked_at ?? clock.now(),
            },
            trx,
          ),
      });
    } catch (err) {
      // Gone meanwhile (revoked by another call, which recorded its outcome): nothing to add.
      if (err instanceof WarrantError && err.code === 'not_found') return;
      const transient = err instanceof WarrantError && err.code === 'upstream_unavailable';
      logger.warn({ connection: id, provider, err: (err as Error).message }, 'offboarding could not revoke a connection; it is kept, offboard again to retry');
      const detail = transient
        ? `${(err as Error).message.replace(/; the connection is kept, try again$/, '')}; the connection is kept: offboard the owner again to retry`
        : 'the revocation failed; the connection is kept: offboard the owner again to retry';
      const entries = await store
        .transaction(async (trx) => audit.append(await record(owner, { id, provider, revoked: false, verified: false, verification: 'unsupported', detail, idp_status: null, checked_at: clock.now() }, trx), trx))
        .catch((e: unknown) => {
          logger.error({ connection: id, err: (e as Error).message }, 'could not record an offboarding outcome');
          return [] as AuditEntry[];
        });
      bus.publish(entries);
    }
  }

  /** What the store says now: the owner's agents and the recorded outcome of each grant. */
  async function reportOf(owner: string): Promise<OffboardReport> {
    const row = await store.owners.get(owner);
    if (!row) throw notFound(`owner ${owner}`);
    if (row.status !== 'offboarded') throw new WarrantError('conflict', `owner ${owner} is not offboarded`, { owner });
    const agents = await store.db.selectFrom('agents').select(['id', 'status', 'oauth_client']).where('owner', '=', owner).orderBy('created_at').orderBy('id').execute();
    const outcomes = await store.db.selectFrom('offboarded_connections').selectAll().where('owner', '=', owner).orderBy('checked_at').orderBy('connection_id').execute();
    return {
      owner,
      status: 'offboarded',
      offboarded_at: new Date(Number(row.offboarded_at ?? row.created_at)).toISOString(),
      agents: agents.map((a) => ({ id: a.id, revoked: a.status === 'revoked' })),
      oauth_clients: agents.filter((a) => a.oauth_client !== null).map((a) => ({ client_id: a.oauth_client!, agent: a.id, revoked: a.status === 'revoked' })),
      connections: outcomes.map((o) => ({
        id: o.connection_id,
        provider: o.provider,
        revoked: Number(o.revoked) === 1,
        verified: Number(o.verified) === 1,
        verification: o.verification,
        detail: o.detail,
        idp_status: o.idp_status === null ? null : Number(o.idp_status),
        checked_at: new Date(Number(o.checked_at)).toISOString(),
      })),
    };
  }

  async function run(owner: string, actor: string): Promise<OffboardReport> {
    const { keyIds, entries } = await revokeAgents(owner, actor);
    await deps.agents.dropKeys(keyIds);
    bus.publish(entries);
    // No connection can be added any more (the owner is offboarded): one list is all of them.
    const left = await store.connections.list({ owner, limit: options.maxConnections });
    await eachLimited(left, options.concurrency, (c) => revokeConnection(owner, c.id, c.provider, actor));
    const report = await reportOf(owner);
    const unverified = report.connections.filter((c) => !c.verified).length;
    logger.info({ owner, agents: report.agents.length, connections: report.connections.length, unverified }, 'owner offboarded');
    return report;
  }

  return {
    /**
     * Offboards `owner` (see above) and answers the state: every agent revoked, and per upstream
     * grant whether it was revoked and verified dead. Unknown owner: `not_found`.
     */
    offboard(owner: string, actor: string): Promise<OffboardReport> {
      let p = running.get(owner);
      if (!p) {
        p = run(owner, actor).finally(() => running.delete(owner));
        running.set(owner, p);
      }
      return p;
    },

    /** The recorded outcome of an offboarded owner (`conflict` while the owner is active). */
    report: reportOf,

    /** GET /v1/owners: owners by id with their counts, a page at a time. */
    async list(filter: OwnerFilter = {}): Promise<OwnerView[]> {
      return (await store.owners.list(filter)).map(ownerView);
    },

    /** GET /v1/owners/{owner}: with the offboarding's outcome once offboarded. */
    async get(owner: string): Promise<OwnerView & { offboarding?: OffboardReport }> {
      const row = await store.owners.getWithCounts(owner);
      if (!row) throw notFound(`owner ${owner}`);
      return { ...ownerView(row), ...(row.status === 'offboarded' ? { offboarding: await reportOf(owner) } : {}) };
    },
  };
}

export type Offboarding = ReturnType<typeof createOffboarding>;
