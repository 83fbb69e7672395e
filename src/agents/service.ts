import type { Logger } from 'pino';
import { randomToken } from '../crypto/index.ts';
import { WarrantError, invalidRequest, notFound } from '../errors/index.ts';
import type { AuditLog, EventBus } from '../events/index.ts';
import type { AgentRow, Db, GrantRow, Store } from '../store/index.ts';
import { createAgentAuthenticator, type AgentAuthOptions } from './auth.ts';
import { mintApiKey } from './keys.ts';
import { createAgentsRepo, type AgentStatusFilter } from './repo.ts';
import { createShares, createSharesRepo } from './shares.ts';
import { createAgentUpdate, type UpdateAgentInput } from './update.ts';
import { createOrphanSweep, type OrphanSweepOptions } from './orphans.ts';
import { createScopeReview } from './review.ts';
import type { Locks } from '../locks/index.ts';
import type { KeyInvalidations } from './invalidation.ts';
import { scopeList, viewOf, type AgentView } from './view.ts';
import { NO_TAGS, tagColumns, tagPatchProblem, type TagFilter, type TagPatch } from '../util/tags.ts';

/** Every option of the agent service and its default. */
export const agentDefaults: AgentAuthOptions & { cacheMaxAgeMs: number; maxGrants: number; maxNameLength: number } = {
  /** Without an invalidation feed, a verified key is reused from memory this long: the most a revocation made on another instance takes to bite. */
  cacheTtlMs: 5_000,
  /** With a feed (every Warrant instance), an entry lives until invalidated, re-read after this at most. */
  cacheMaxAgeMs: 60_000,
  /** last_used_at is written at most once a minute per agent. */
  touchIntervalMs: 60_000,
  cacheMaxEntries: 10_000,
  /** An unknown key id makes at most one look for new agents per second: the most a key made on another instance is refused. */
  knownIdsSyncIntervalMs: 1_000,
  maxGrants: 100,
  maxNameLength: 100,
};

/** POST /v1/agents, wire names. */
export interface CreateAgentInput {
  name: string;
  owner: string;
  /** ISO 8601 date-time in the future; absent or null: no expiry. */
  expires_at?: string | null;
  grants: { connection: string; scopes: string[]; token_export?: boolean }[];
  /** Tags (util/tags.ts): the product's end user and organization ids, free labels. */
  end_user?: string | null;
  organization?: string | null;
  labels?: Record<string, string>;
}

export interface AgentServiceDeps {
  store: Store;
  audit: AuditLog;
  bus: EventBus;
  clock: { now(): number };
  logger: Logger;
  options?: Partial<typeof agentDefaults>;
  /**
   * Carries key invalidations to the other instances (invalidation.ts): a revocation made here
   * stops the key there too, within a second, not when their cache entry ages out.
   */
  invalidations?: Pick<KeyInvalidations, 'publish' | 'subscribe'> & Partial<Pick<KeyInvalidations, 'current'>>;
  /** The orphan sweep's lock (orphans.ts): spares instances the same scan. */
  locks?: Pick<Locks, 'withLock'>;
  /** WARRANT_AGENT_IDLE_DAYS, WARRANT_ORPHAN_POLICY and the sweep's pace (orphans.ts). */
  orphans?: Partial<OrphanSweepOptions>;
}

export function createAgentService(deps: AgentServiceDeps) {
  const { store, audit, bus, clock } = deps;
  const options = { ...agentDefaults, ...deps.options };
  const repo = createAgentsRepo(store.db, store.dialect);
  const auth = createAgentAuthenticator({ repo, clock, logger: deps.logger, options, current: deps.invalidations?.current });
  const sharesRepo = createSharesRepo(store.db);
  // What another instance invalidated (or this one, echoed back): dropped here too.
  deps.invalidations?.subscribe((keyIds) => (keyIds ? keyIds.forEach((k) => auth.invalidate(k)) : auth.invalidate()));
  /** Drops keys here at once and announces it to every instance; resolves once announced. */
  async function dropKeys(keyIds: string[]): Promise<void> {
    for (const k of keyIds) auth.invalidate(k);
    await deps.invalidations?.publish(keyIds);
  }
  /** `dropKeys` without waiting for the announcement (or every key, here only). */
  function invalidateEverywhere(keyId?: string): void {
    auth.invalidate(keyId);
    if (keyId !== undefined) void dropKeys([keyId]);
  }
  const shares = createShares({ store, audit, bus, clock, repo: sharesRepo, invalidate: invalidateEverywhere });
  const updater = createAgentUpdate({ store, audit, bus, clock, repo, invalidate: (keyId) => dropKeys([keyId]) });
  const orphanSweep = createOrphanSweep({
    store, audit, bus, clock, logger: deps.logger, repo, locks: deps.locks, options: deps.orphans,
    invalidate: (keyId) => dropKeys([keyId]),
  });
  const idleMs = orphanSweep.options.idleDays * 86_400_000;
  const scopeReview = createScopeReview({ db: store.db, dialect: store.dialect, repo, clock });

  async function viewsOf(rows: AgentRow[], trx?: Db): Promise<AgentView[]> {
    const grants = await repo.grantsOf(
      rows.map((r) => r.id),
      trx,
    );
    const now = clock.now();
    return rows.map((r) => viewOf(r, grants.get(r.id) ?? [], now));
  }

  async function getRow(id: string, trx?: Db): Promise<AgentRow> {
    const row = await repo.get(id, trx);
    if (!row) throw notFound(`agent ${id}`);
    return row;
  }

  function expiryOf(value: string | null | undefined, now: number): number | null {
    if (value === undefined || value === null) return null;
    const at = Date.parse(value);
    if (Number.isNaN(at)) throw invalidRequest('expires_at', 'is not an ISO 8601 date-time');
    if (at <= now) throw invalidRequest('expires_at', 'must be in the future');
    return at;
  }

  /** The tags given at creation, checked (`invalid_request` naming the field). */
  function tagsGiven(input: TagPatch): TagPatch {
    const problem = tagPatchProblem(input);
    if (problem) throw invalidRequest(problem.field, problem.detail);
    return {
      ...(input.end_user !== undefined ? { end_user: input.end_user } : {}),
      ...(input.organization !== undefined ? { organization: input.organization } : {}),
      ...(input.labels !== undefined ? { labels: input.labels } : {}),
    };
  }

  /** Checks each grant against its connection (inside the creating transaction) and normalizes it. */
  async function checkGrants(grants: CreateAgentInput['grants'], owner: string, trx: Db, oauthClient?: string) {
    if (!grants.length && oauthClient === undefined) throw invalidRequest('grants', 'at least one grant is required');
    if (grants.length > options.maxGrants) throw invalidRequest('grants', `at most ${options.maxGrants} grants`);
    const seen = new Set<string>();
    const out: { connection: string; scopes: string[]; token_export: boolean; shared?: true }[] = [];
    for (const [i, g] of grants.entries()) {
      if (seen.has(g.connection)) throw invalidRequest(`grants[${i}].connection`, `connection ${g.connection} is granted twice; merge the grants`);
      seen.add(g.connection);
      const connection = await store.connections.get(g.connection, trx);
      if (!connection) throw invalidRequest(`grants[${i}].connection`, `no connection ${g.connection}`);
      if (connection.status === 'revoked') throw invalidRequest(`grants[${i}].connection`, `connection ${g.connection} is revoked`);
      // Another owner's connection only with that owner's allowance (shares.ts); checked before
      // the scopes, so a refusal tells nothing of what the connection holds.
      const shared = connection.owner !== owner;
      if (shared && !(await sharesRepo.has(g.connection, owner, trx))) {
        throw invalidRequest(
          `grants[${i}].connection`,
          `connection ${g.connection} belongs to another owner; its owner must share it with ${owner} first (POST /v1/connections/${g.connection}/shares)`,
        );
      }
      const scopes = [...new Set(g.scopes)];
      if (!scopes.length) throw invalidRequest(`grants[${i}].scopes`, 'at least one scope is required');
      const held = new Set(scopeList(connection.scopes));
      const notHeld = scopes.filter((s) => !held.has(s));
      if (notHeld.length) {
        throw invalidRequest(`grants[${i}].scopes`, `connection ${g.connection} does not hold ${notHeld.join(', ')} (it holds ${[...held].join(', ') || 'no scopes'})`);
      }
      out.push({ connection: g.connection, scopes, token_export: g.token_export ?? false, ...(shared ? { shared: true as const } : {}) });
    }
    return out;
  }

  return {
    authenticate: auth.authenticate,
    /** Drops cached keys, on every instance; the next call reads the store. */
    invalidate: invalidateEverywhere,
    /** Drops these keys on every instance; resolves once the other instances were told (offboarding.ts). */
    dropKeys,
    /** Waits for in-flight last_used_at writes (call before closing the store). */
    settle: auth.settle,
    /** Cross-owner allowances: a connection's owner lets another owner's agents be granted it. */
    shares,

    /**
     * Creates an agent with its grants and an `agent.created` audit entry, in one transaction.
     * The returned `api_key` exists only here: the store keeps its hash.
     * `oauthClient`: the agent is an OAuth client of Warrant's authorization server (src/authz),
     * created on its owner's consent; it holds no connection grant yet, so none is required.
     */
    async create(input: CreateAgentInput, actor = 'admin', opts: { oauthClient?: string } = {}): Promise<AgentView & { api_key: string }> {
      const name = input.name.trim();
      if (!name || name.length > options.maxNameLength) throw invalidRequest('name', `must be 1 to ${options.maxNameLength} characters`);
      if (!input.owner.trim()) throw invalidRequest('owner', 'is required');
      const now = clock.now();
      const expiresAt = expiryOf(input.expires_at, now);
      const tags = { ...NO_TAGS, ...tagsGiven(input) };
      const id = randomToken(12, 'agt_');
      const key = mintApiKey();
      const { row, grantRows, entries } = await store.transaction(async (trx) => {
        // Locked until commit: an offboarding running now either finds this agent or is seen here.
        const owner = await store.owners.claim(input.owner, now, trx);
        if (owner.status === 'offboarded') throw new WarrantError('conflict', `owner ${input.owner} is offboarded`, { owner: input.owner });
        const grants = await checkGrants(input.grants, input.owner, trx, opts.oauthClient);
        const row: AgentRow = {
          id,
          name,
          owner: input.owner,
          key_id: key.keyId,
          key_hash: key.keyHash,
          status: 'active',
          expires_at: expiresAt,
          last_used_at: null,
          created_at: now,
          revoked_at: null,
          oauth_client: opts.oauthClient ?? null,
          orphaned_at: null,
          suspended_at: null,
          suspended_reasons: null,
          end_user: tags.end_user,
          organization: tags.organization,
          labels: tagColumns(tags).labels!,
        };
        const grantRows: GrantRow[] = grants.map((g) => ({
          id: randomToken(12, 'gnt_'),
          agent_id: id,
          connection_id: g.connection,
          scopes: JSON.stringify(g.scopes),
          token_export: g.token_export ? 1 : 0,
          created_at: now,
        }));
        await repo.insert(row, grantRows, trx);
        const entries = await audit.append(
          {
            type: 'agent.created',
            actor,
            subject: `agent:${id}`,
            // Never the key nor its hash: the key id is only the lookup half.
            data: {
              name,
              owner: input.owner,
              key_id: key.keyId,
              expires_at: expiresAt === null ? null : new Date(expiresAt).toISOString(),
              grants,
              end_user: tags.end_user,
              organization: tags.organization,
              labels: tags.labels,
              ...(opts.oauthClient ? { oauth_client: opts.oauthClient } : {}),
            },
          },
          trx,
        );
        return { row, grantRows, entries };
      });
      auth.remember(key.keyId);
      bus.publish(entries);
      return { ...viewOf(row, grantRows, now), api_key: key.apiKey };
    },

    async get(id: string): Promise<AgentView> {
      return (await viewsOf([await getRow(id)]))[0]!;
    },

    async list(filter: { owner?: string; status?: AgentStatusFilter; limit?: number } & TagFilter = {}): Promise<AgentView[]> {
      return viewsOf(await repo.list(filter, clock.now()));
    },

    /**
     * Agents that are not revoked (active or suspended) but have lost their reason to exist, each
     * with its `orphan_reasons`: `owner_offboarded`, `owner_unknown` (no owner record),
     * `no_usable_connection` (every grant's connection is gone, revoked or reauth_required),
     * `expired` (past expires_at, never revoked), `idle` (no authenticated request for
     * WARRANT_AGENT_IDLE_DAYS). The sweep (`orphanSweep`, orphans.ts) announces each once.
     */
    async orphaned(filter: { owner?: string; limit?: number } & TagFilter = {}): Promise<AgentView[]> {
      const rows = await repo.orphans({ ...filter, idleMs }, clock.now());
      const views = await viewsOf(rows);
      return views.map((v, i) => ({ ...v, orphan_reasons: rows[i]!.reasons }));
    },

    /**
     * Revokes the agent: its key stops working at once on this instance, within a second on
     * others (invalidation.ts; while the feed cannot be read, the cache is not served). Idempotent: revoking a revoked agent answers its view again (200), with the
     * first revocation's time, and writes no second audit entry.
     */
    /** Announces orphans (`agent.orphaned`) and applies WARRANT_ORPHAN_POLICY; started by Warrant's listen(). */
    orphanSweep,

    /** GET /v1/review/scopes (review.ts): granted vs used per agent and grant over a window, with narrower grants suggested. */
    reviewScopes: scopeReview.review,

    /**
     * PATCH /v1/agents/{id} (update.ts): narrows grants in place (same key, same grant ids) and
     * suspends or reactivates; widening is refused. The key cache is dropped on every instance.
     */
    async update(id: string, input: UpdateAgentInput, actor = 'admin'): Promise<AgentView> {
      return (await viewsOf([await updater.update(id, input, actor)]))[0]!;
    },

    async revoke(id: string, actor = 'admin'): Promise<AgentView> {
      const now = clock.now();
      const { row, entries } = await store.transaction(async (trx) => {
        const row = await getRow(id, trx);
        if (row.status === 'revoked' || !(await repo.markRevoked(id, now, trx))) return { row: await getRow(id, trx), entries: [] };
        const entries = await audit.append(
          { type: 'agent.revoked', actor, subject: `agent:${id}`, data: { name: row.name, owner: row.owner, key_id: row.key_id } },
          trx,
        );
        return { row: { ...row, status: 'revoked' as const, revoked_at: now }, entries };
      });
      await dropKeys([row.key_id]);
      bus.publish(entries);
      return (await viewsOf([row]))[0]!;
    },
  };
}

export type AgentService = ReturnType<typeof createAgentService>;
