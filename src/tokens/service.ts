import type { Logger } from 'pino';
import { WarrantError, notFound } from '../errors/index.ts';
import type { Provider } from '../providers/index.ts';
import type { ConnectionRow, Store } from '../store/index.ts';
import { LockTimeoutError, pollDelay, sleep, type Locks } from '../locks/index.ts';
import type { AuditLog, EventBus } from '../events/index.ts';
import type { ClientResolver } from './clients.ts';
import { isFresh, type BackoffSettings, type TimingSettings } from './timing.ts';
import { nextProbeAt, staleServable } from './outage.ts';
import { replayAllowed } from './rotation.ts';
import { createRefresher, indeterminateDetail, RefreshFailed, type Claim } from './refresh.ts';

export { parseJson, tokenLifetimeSeconds } from './refresh.ts';

export interface Clock {
  now(): number;
}

export interface FreshToken {
  connectionId: string;
  accessToken: string;
  /** Epoch ms, or null for a token that does not expire. */
  expiresAt: number | null;
  /** This call caused a refresh at the IdP (or joined one in flight). */
  refreshed: boolean;
  /** The IdP is failing; this is the last token, still valid, served until it expires. */
  stale: boolean;
}

export interface TokenRequest {
  /** The token must stay valid at least this long (seconds). */
  minTtlSeconds?: number;
  /**
   * The upstream refused this token: refresh unless the stored token is already another one.
   * Many agents hitting 401 at once cause one refresh, not one each.
   */
  rejectedToken?: string;
  /**
   * Refresh unless the connection was refreshed after this time (epoch ms). The scheduler passes
   * the refresh time it saw when it claimed the row, so a refresh-ahead happens once even when
   * the token is not yet inside its skew window (jitter, idle keep-alive) and never twice.
   */
  refreshedAtOrBefore?: number;
  /**
   * An operator's explicit refresh (POST /v1/connections/{id}/refresh): ignores the backoff, and
   * may send a refresh token whose last use had an unknown outcome.
   */
  force?: boolean;
  actor?: string;
}

/** Connection changes from every instance (agents/invalidation.ts, its `connections` topic). */
export interface ConnectionChanges {
  /** Called with the connection ids announced anywhere (this instance included); `undefined` = all. */
  subscribe(handler: (ids: string[] | undefined) => void): () => void;
  /** Announces these connections to every instance. Never throws. */
  publish(ids: string[]): Promise<void>;
  /** Whether cached entries may be served: the feed has been read recently enough. */
  current(): boolean;
}

export interface TokenServiceDeps {
  store: Store;
  catalog: Map<string, Provider>;
  locks: Locks;
  audit: AuditLog;
  bus: EventBus;
  clients: ClientResolver;
  clock: Clock;
  logger: Logger;
  timing: TimingSettings;
  idpTimeoutMs: number;
  /** Where the owner re-connects a dead grant; included in `reauth_required` problems and events. */
  reauthUrl(connection: ConnectionRow): Promise<string>;
  backoff?: { transient: BackoffSettings; misconfigured: BackoffSettings };
  onRefresh?(provider: string, outcome: 'ok' | 'terminal' | 'transient' | 'misconfigured'): void;
  /**
   * Connection changes from every instance (agents/invalidation.ts). With it, a cached token is
   * dropped when its connection is announced (revoked, re-connected, imported, needing re-auth
   * elsewhere), served at most `cacheMaxAgeMs`, and not served while the feed is not current;
   * `invalidate` announces. Without it, this process's own invalidations only (as before).
   */
  changes?: ConnectionChanges;
  cache?: { maxEntries?: number; maxAgeMs?: number };
}

interface Cached {
  accessToken: string;
  expiresAt: number | null;
  lifetimeMs: number | null;
  version: number;
  /** performance.now() when it was stored. */
  at: number;
}

const defaultBackoff = {
  transient: { baseMs: 1_000, capMs: 60_000 },
  misconfigured: { baseMs: 30_000, capMs: 3_600_000 },
};

export function lifetimeOf(row: Pick<ConnectionRow, 'expires_at' | 'last_refreshed_at' | 'created_at'>): number | null {
  if (row.expires_at === null) return null;
  return row.expires_at - (row.last_refreshed_at ?? row.created_at);
}

export function createTokenService(deps: TokenServiceDeps) {
  const { store, locks, clock, timing } = deps;
  const cache = new Map<string, Cached>();
  const cacheMaxEntries = deps.cache?.maxEntries ?? 50_000;
  const cacheMaxAgeMs = deps.cache?.maxAgeMs ?? 60_000;
  /** Bumped by every invalidation: a flow that read the store before it must not fill the cache. */
  let epoch = 0;
  const changes = deps.changes;
  function drop(ids: string[] | undefined): void {
    epoch++;
    if (ids) for (const id of ids) cache.delete(id);
    else cache.clear();
  }
  changes?.subscribe(drop);
  /** Whether a cached token may be served without reading the connection's row. */
  const trusted = (c: Cached) => !changes || (changes.current() && performance.now() - c.at < cacheMaxAgeMs);
  const inflight = new Map<string, Promise<FreshToken>>();
  // Locks and claims are short and kept alive while held: a holder that dies blocks the connection
  // for a few seconds at most. A waiter gives up after an IdP call's worth of time, twice.
  const lockOptions = { ttlMs: 6_000, waitMs: deps.idpTimeoutMs * 2 + 5_000 };
  const claimLeaseMs = 6_000;
  const refresher = createRefresher({ ...deps, backoff: deps.backoff ?? defaultBackoff });

  const providerOf = (row: ConnectionRow): Provider => {
    const p = deps.catalog.get(row.provider);
    if (!p) throw new WarrantError('conflict', `provider ${row.provider} is no longer in the catalog`);
    return p;
  };

  async function reauthRequired(row: ConnectionRow): Promise<WarrantError> {
    return new WarrantError(
      'reauth_required',
      `the ${row.provider} grant of connection ${row.id} is revoked or expired; its owner must connect again`,
      { connection: row.id, reauth_url: await deps.reauthUrl(row) },
    );
  }

  function unusable(row: ConnectionRow): Promise<WarrantError> | undefined {
    if (row.status === 'reauth_required') return reauthRequired(row);
    if (row.status === 'revoked') return Promise.resolve(new WarrantError('conflict', `connection ${row.id} is revoked`));
    return undefined;
  }

  /** Caches the token unless an invalidation came after `startedIn` (the flow's read may predate it). */
  function remember(row: ConnectionRow, accessToken: string, startedIn: number): Cached {
    const c = { accessToken, expiresAt: row.expires_at, lifetimeMs: lifetimeOf(row), version: row.version, at: performance.now() };
    if (startedIn === epoch) {
      cache.delete(row.id);
      cache.set(row.id, c);
      if (cache.size > cacheMaxEntries) cache.delete(cache.keys().next().value!);
    }
    return c;
  }

  const result = (id: string, c: Cached, refreshed: boolean, stale = false): FreshToken => ({
    connectionId: id,
    accessToken: c.accessToken,
    expiresAt: c.expiresAt,
    refreshed,
    stale,
  });

  /** The stored token, if it satisfies the request as it stands. */
  async function storedIfGood(row: ConnectionRow, minTtlMs: number, startedIn: number, rejected?: string): Promise<FreshToken | undefined> {
    const now = clock.now();
    if (!isFresh(now, row.expires_at, lifetimeOf(row), minTtlMs, timing)) return undefined;
    const cached = cache.get(row.id);
    const accessToken =
      cached && cached.version === row.version ? cached.accessToken : await store.vault.get({ scope: 'connection', ref: row.id, field: 'access_token' });
    if (!accessToken || accessToken === rejected) return undefined;
    return result(row.id, remember(row, accessToken, startedIn), false);
  }

  /**
   * The IdP is failing: the last token while it keeps a safety margin (and is not the one the
   * upstream just refused), else `refresh_unavailable` with the time until the next probe.
   */
  async function staleOrUnavailable(row: ConnectionRow, startedIn: number, rejected?: string, why?: string): Promise<FreshToken> {
    const now = clock.now();
    if (staleServable(now, row.expires_at, lifetimeOf(row))) {
      const accessToken = await store.vault.get({ scope: 'connection', ref: row.id, field: 'access_token' });
      if (accessToken && accessToken !== rejected) return result(row.id, remember(row, accessToken, startedIn), false, true);
    }
    const stuck = !replayAllowed(row, providerOf(row), now);
    const retryAfter = stuck ? 60 : Math.max(1, Math.ceil((nextProbeAt(row) - now) / 1000));
    throw new WarrantError(
      'refresh_unavailable',
      why ?? (stuck ? indeterminateDetail(row) : undefined) ?? `the identity provider of ${row.provider} is failing and connection ${row.id} has no token left that is safe to use`,
      { connection: row.id, retry_after: retryAfter },
    );
  }

  /**
   * Claims the connection's refresh in the store, the guard that holds whatever happens to the
   * lock service. Normally the claim is free (we hold the lock); when it is not, the lock did not
   * exclude the other holder (Redis flushed or restarted, a lock session killed) and we wait for
   * its lease, serving its result if it refreshed meanwhile.
   */
  async function claim(id: string, signal: AbortSignal, check: (row: ConnectionRow | undefined) => Promise<FreshToken | undefined>) {
    const deadline = Date.now() + lockOptions.waitMs;
    for (let attempt = 0; ; attempt++) {
      const row = await store.connections.claimRefresh(id, clock.now(), claimLeaseMs);
      if (row) {
        const done = await check(row).catch(async (err) => {
          await store.connections.releaseClaim(id, row.refresh_fence);
          throw err;
        });
        if (done) await store.connections.releaseClaim(id, row.refresh_fence);
        return done ?? { row, claim: { fence: row.refresh_fence, version: row.version, signal } satisfies Claim };
      }
      const done = await check(await store.connections.get(id));
      if (done) return done;
      if (Date.now() >= deadline) throw new LockTimeoutError(`connection:${id}`);
      await sleep(pollDelay(attempt));
    }
  }

  async function flow(id: string, minTtlMs: number, req: TokenRequest): Promise<FreshToken> {
    const rejected = req.rejectedToken;
    const actor = req.actor ?? 'system';
    const startedIn = epoch;
    const check = async (row: ConnectionRow | undefined) => {
      if (!row) throw notFound(`connection ${id}`);
      const bad = unusable(row);
      if (bad) throw await bad;
      const due = req.refreshedAtOrBefore !== undefined && (row.last_refreshed_at ?? row.created_at) <= req.refreshedAtOrBefore;
      const good = due ? undefined : await storedIfGood(row, minTtlMs, startedIn, rejected);
      if (good) return good;
      if (req.force) return undefined;
      const now = clock.now();
      if (!replayAllowed(row, providerOf(row), now)) return staleOrUnavailable(row, startedIn, rejected);
      if (row.next_attempt_at === null || row.next_attempt_at <= now) return undefined;
      // In backoff. An agent's request whose token is no longer safe may probe the IdP once per
      // interval (so calls heal within seconds of the IdP's return); the scheduler keeps its backoff.
      // A misconfigured client (status `error`) is not probed: only an operator's fix helps there.
      const probe = req.refreshedAtOrBefore === undefined && row.status === 'active' && now >= nextProbeAt(row);
      if (probe && (rejected !== undefined || !staleServable(now, row.expires_at, lifetimeOf(row)))) return undefined;
      return staleOrUnavailable(row, startedIn, rejected);
    };
    const before = await check(await store.connections.get(id));
    if (before) return before;
    try {
      return await locks.withLock(`connection:${id}`, lockOptions, async (lease) => {
        // Re-read (through the claim) under the lock: another instance may have refreshed while we waited.
        const claimed = await claim(id, lease.signal, check);
        if (!('claim' in claimed)) return claimed;
        const { row } = claimed;
        const keepAlive = setInterval(() => {
          store.connections.extendClaim(id, claimed.claim.fence, clock.now() + claimLeaseMs).catch(() => {});
        }, claimLeaseMs / 3);
        try {
          const issued = await refresher.refresh(row, providerOf(row), claimed.claim, actor, req.force);
          return result(id, remember(issued.row, issued.accessToken, startedIn), issued.refreshed);
        } catch (err) {
          if (!(err instanceof RefreshFailed)) throw err;
          const current = err.row;
          if (current.status === 'reauth_required') {
            // Every instance stops serving its cached token of this connection.
            await invalidate(id);
            throw await reauthRequired(current);
          }
          const stale = err.failure.error === 'refresh_indeterminate' ? err.failure.message : undefined;
          return staleOrUnavailable(current, startedIn, rejected, stale);
        } finally {
          clearInterval(keepAlive);
        }
      });
    } catch (err) {
      if (!(err instanceof LockTimeoutError)) throw err;
      // Someone else holds the refresh longer than an IdP call may take: never wait unbounded.
      throw new WarrantError('refresh_unavailable', `the refresh of connection ${id} is taking too long; try again`, { connection: id, retry_after: 1 }, { cause: err });
    }
  }

  async function getFreshToken(id: string, req: TokenRequest = {}): Promise<FreshToken> {
    const minTtlMs = Math.max(0, (req.minTtlSeconds ?? 0) * 1000);
    const cached = req.refreshedAtOrBefore === undefined ? cache.get(id) : undefined;
    if (cached && trusted(cached) && cached.accessToken !== req.rejectedToken && isFresh(clock.now(), cached.expiresAt, cached.lifetimeMs, minTtlMs, timing)) {
      return result(id, cached, false);
    }
    const running = inflight.get(id);
    if (running) {
      const joined = await running.catch(() => undefined);
      if (joined && joined.accessToken !== req.rejectedToken && (joined.refreshed || joined.stale)) return joined;
      if (joined && joined.accessToken !== req.rejectedToken && isFresh(clock.now(), joined.expiresAt, cache.get(id)?.lifetimeMs ?? null, minTtlMs, timing)) {
        return joined;
      }
      if (!joined) return running; // rethrows the flight's own error to every joiner
    }
    const flight = flow(id, minTtlMs, req).finally(() => {
      if (inflight.get(id) === flight) inflight.delete(id);
    });
    inflight.set(id, flight);
    return flight;
  }

  /** Drops the connection here at once and announces it to every instance (never throws). */
  async function invalidate(...ids: string[]): Promise<void> {
    drop(ids);
    await changes?.publish(ids);
  }

  return {
    getFreshToken,
    /**
     * Forget the cached token and metadata of connections (after import, revoke, re-connect, a
     * status change), on every instance; resolves once announced. Never throws.
     */
    invalidate,
    /** For tests and metrics. */
    cacheSize: () => cache.size,
  };
}

export type TokenService = ReturnType<typeof createTokenService>;
