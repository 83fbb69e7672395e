import type { Logger } from 'pino';
import { WarrantError, notFound } from '../errors/index.ts';
import { OAuthCallError, classify, type TokenSet } from '../oauth/index.ts';
import type { Provider } from '../providers/index.ts';
import type { ConnectionRow, Store } from '../store/index.ts';
import type { Locks } from '../locks/index.ts';
import type { AuditInput, AuditLog, EventBus } from '../events/index.ts';
import type { ClientResolver } from './clients.ts';
import { backoffMs, isFresh, refreshDueAt, type BackoffSettings, type TimingSettings } from './timing.ts';

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
  actor?: string;
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
}

interface Cached {
  accessToken: string;
  expiresAt: number | null;
  lifetimeMs: number | null;
  version: number;
}

const defaultBackoff = {
  transient: { baseMs: 1_000, capMs: 60_000 },
  misconfigured: { baseMs: 30_000, capMs: 3_600_000 },
};

class StaleWriteError extends Error {}

export const parseJson = <T>(text: string, fallback: T): T => {
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
};

export function lifetimeOf(row: Pick<ConnectionRow, 'expires_at' | 'last_refreshed_at' | 'created_at'>): number | null {
  if (row.expires_at === null) return null;
  return row.expires_at - (row.last_refreshed_at ?? row.created_at);
}

/** Seconds a token response says it lives, else the catalog's lifetime, else unknown (null). */
export function tokenLifetimeSeconds(tokens: Pick<TokenSet, 'expires_in'>, provider: Provider): number | null {
  if (typeof tokens.expires_in === 'number' && tokens.expires_in > 0) return tokens.expires_in;
  return provider.token_lifetime ?? null;
}

export function createTokenService(deps: TokenServiceDeps) {
  const { store, locks, audit, bus, clock, timing, logger } = deps;
  const backoff = deps.backoff ?? defaultBackoff;
  const cache = new Map<string, Cached>();
  const inflight = new Map<string, Promise<FreshToken>>();
  const lockOptions = { ttlMs: deps.idpTimeoutMs * 2 + 5_000, waitMs: deps.idpTimeoutMs * 2 + 5_000 };

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

  function remember(row: ConnectionRow, accessToken: string): Cached {
    const c = { accessToken, expiresAt: row.expires_at, lifetimeMs: lifetimeOf(row), version: row.version };
    cache.set(row.id, c);
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
  async function storedIfGood(row: ConnectionRow, minTtlMs: number, rejected?: string): Promise<FreshToken | undefined> {
    const now = clock.now();
    if (!isFresh(now, row.expires_at, lifetimeOf(row), minTtlMs, timing)) return undefined;
    const cached = cache.get(row.id);
    const accessToken =
      cached && cached.version === row.version ? cached.accessToken : await store.vault.get({ scope: 'connection', ref: row.id, field: 'access_token' });
    if (!accessToken || accessToken === rejected) return undefined;
    return result(row.id, remember(row, accessToken), false);
  }

  /** During backoff: the current token while it is valid, else refresh_unavailable. */
  async function duringBackoff(row: ConnectionRow): Promise<FreshToken> {
    const now = clock.now();
    const retryAfter = Math.max(1, Math.ceil(((row.next_attempt_at ?? now) - now) / 1000));
    if (row.expires_at === null || row.expires_at > now) {
      const accessToken = await store.vault.get({ scope: 'connection', ref: row.id, field: 'access_token' });
      if (accessToken) return result(row.id, remember(row, accessToken), false, true);
    }
    throw new WarrantError(
      'refresh_unavailable',
      `the identity provider of ${row.provider} is failing and the last token of connection ${row.id} has expired`,
      { connection: row.id, retry_after: retryAfter },
    );
  }

  async function persistSuccess(row: ConnectionRow, provider: Provider, tokens: TokenSet, fence: number, actor: string): Promise<Cached> {
    const now = clock.now();
    const lifetime = tokenLifetimeSeconds(tokens, provider);
    const expiresAt = lifetime === null ? null : now + lifetime * 1000;
    const lifetimeMs = lifetime === null ? null : lifetime * 1000;
    const granted = tokens.scope ? tokens.scope.split(provider.scope_separator === ' ' ? /\s+/ : provider.scope_separator).filter(Boolean) : undefined;
    const recovered = row.failure_count > 0 || row.status === 'error';
    const events: AuditInput[] = [
      {
        type: 'connection.refreshed',
        actor,
        subject: `connection:${row.id}`,
        data: { provider: row.provider, expires_at: expiresAt, rotated: !!tokens.refresh_token },
      },
    ];
    if (recovered) {
      events.push({ type: 'connection.recovered', actor, subject: `connection:${row.id}`, data: { provider: row.provider, after_failures: row.failure_count } });
    }
    const entries = await store.transaction(async (trx) => {
      const ok = await store.connections.updateIfVersion(
        row.id,
        row.version,
        {
          status: 'active',
          expires_at: expiresAt,
          refresh_due_at: refreshDueAt(now, expiresAt, lifetimeMs, timing, provider.refresh_token_idle_timeout),
          last_refreshed_at: now,
          failure_count: 0,
          next_attempt_at: null,
          last_error: null,
          ...(granted ? { scopes: JSON.stringify(granted) } : {}),
          updated_at: now,
        },
        trx,
        fence,
      );
      if (!ok) throw new StaleWriteError(`connection ${row.id} changed while its refresh was in flight`);
      // The rotated refresh token is sealed and committed before the lock is released: the next
      // holder always sees the newest one (RFC 9700 §4.14.2: a reused one would revoke the grant).
      await store.vault.put({ scope: 'connection', ref: row.id, field: 'access_token' }, tokens.access_token, trx);
      if (tokens.refresh_token) await store.vault.put({ scope: 'connection', ref: row.id, field: 'refresh_token' }, tokens.refresh_token, trx);
      return audit.append(events, trx);
    });
    bus.publish(entries);
    const fresh = { ...row, expires_at: expiresAt, last_refreshed_at: now, version: row.version + 1 };
    return remember(fresh, tokens.access_token);
  }

  async function persistFailure(row: ConnectionRow, err: OAuthCallError, actor: string): Promise<never | FreshToken> {
    const now = clock.now();
    const subject = `connection:${row.id}`;
    if (err.kind === 'terminal') {
      const reauthUrl = await deps.reauthUrl(row);
      const entries = await store.transaction(async (trx) => {
        await store.connections.update(
          row.id,
          { status: 'reauth_required', last_error: err.error, refresh_due_at: null, next_attempt_at: null, updated_at: now },
          trx,
        );
        return audit.append(
          { type: 'connection.reauth_required', actor, subject, data: { provider: row.provider, owner: row.owner, error: err.error, reauth_url: reauthUrl } },
          trx,
        );
      });
      cache.delete(row.id);
      bus.publish(entries);
      throw new WarrantError(
        'reauth_required',
        `the ${row.provider} grant of connection ${row.id} is revoked or expired (${err.error}); its owner must connect again`,
        { connection: row.id, reauth_url: reauthUrl },
        { cause: err },
      );
    }
    const failures = row.failure_count + 1;
    const settings = err.kind === 'misconfigured' ? backoff.misconfigured : backoff.transient;
    const delay = err.retryAfter !== undefined ? Math.max(err.retryAfter * 1000, settings.baseMs / 2) : backoffMs(failures, settings);
    const next = now + delay;
    const status = err.kind === 'misconfigured' ? 'error' : row.status;
    const entries = await store.transaction(async (trx) => {
      await store.connections.update(
        row.id,
        { status, failure_count: failures, next_attempt_at: next, refresh_due_at: next, last_error: err.error, updated_at: now },
        trx,
      );
      // One entry per incident, not per retry: the first failure, or a change of status.
      if (failures === 1 || status !== row.status) {
        return audit.append(
          {
            type: status === 'error' ? 'connection.error' : 'connection.refresh_failing',
            actor,
            subject,
            data: { provider: row.provider, error: err.error, kind: err.kind, status: err.status ?? null },
          },
          trx,
        );
      }
      return [];
    });
    bus.publish(entries);
    logger.warn({ connection: row.id, provider: row.provider, error: err.error, kind: err.kind, retry_in_ms: delay }, 'token refresh failed');
    return duringBackoff({ ...row, status, failure_count: failures, next_attempt_at: next, version: row.version + 1 });
  }

  /**
   * No `expires_in` and no catalog lifetime: ask the IdP (RFC 7662 `exp`). Done after the commit,
   * so the extra round trip never widens the window in which a rotated refresh token is unsaved.
   */
  async function learnExpiry(id: string, client: ReturnType<ClientResolver>, saved: Cached): Promise<void> {
    try {
      const info = await client.introspect(saved.accessToken, 'access_token');
      if (!info.active || !info.exp) return;
      const row = await store.connections.get(id);
      if (!row || row.version !== saved.version) return;
      const provider = providerOf(row);
      const now = clock.now();
      const expiresAt = info.exp * 1000;
      const lifetimeMs = expiresAt - (row.last_refreshed_at ?? now);
      const patch = { expires_at: expiresAt, refresh_due_at: refreshDueAt(now, expiresAt, lifetimeMs, timing, provider.refresh_token_idle_timeout), updated_at: now };
      if (await store.connections.updateIfVersion(id, row.version, patch)) {
        Object.assign(saved, { expiresAt, lifetimeMs, version: row.version + 1 });
      }
    } catch (err) {
      logger.warn({ connection: id, err: (err as Error).message }, 'could not learn the token expiry by introspection');
    }
  }

  /** Gets new tokens from the IdP, under the connection's lock. */
  async function refreshLocked(row: ConnectionRow, fence: number, actor: string): Promise<FreshToken> {
    const provider = providerOf(row);
    const params = parseJson<Record<string, string>>(row.params, {});
    const secrets = await store.vault.getAll('connection', row.id);
    if (provider.auth === 'api_key' || provider.auth === 'basic') {
      if (!secrets.access_token) throw new WarrantError('conflict', `connection ${row.id} holds no credential`);
      return result(row.id, remember(row, secrets.access_token), false);
    }
    let tokens: TokenSet;
    let client: ReturnType<ClientResolver> | undefined;
    try {
      client = deps.clients(provider, row.environment, params);
      const scopes = parseJson<string[]>(row.requested_scopes, []);
      if (provider.auth === 'client_credentials') tokens = await client.clientCredentials(scopes);
      else if (provider.auth === 'jwt_bearer') {
        if (!secrets.private_key) throw new OAuthCallError('terminal', 'no_private_key', undefined, 'the connection holds no private key');
        tokens = await client.jwtBearer({ privateKeyPem: secrets.private_key, subject: params.subject, scopes });
      } else {
        if (!secrets.refresh_token) {
          throw new OAuthCallError('terminal', 'no_refresh_token', undefined, 'the access token expired and the grant has no refresh token');
        }
        tokens = await client.refresh(secrets.refresh_token);
      }
    } catch (err) {
      if (err instanceof WarrantError) throw err;
      const failure = classify(err, `${row.provider} token`);
      deps.onRefresh?.(row.provider, failure.kind);
      return persistFailure(row, failure, actor);
    }
    deps.onRefresh?.(row.provider, 'ok');
    try {
      const saved = await persistSuccess(row, provider, tokens, fence, actor);
      if (saved.expiresAt === null && client?.endpoints.introspection_url) await learnExpiry(row.id, client, saved);
      return result(row.id, saved, true);
    } catch (err) {
      if (err instanceof StaleWriteError) {
        // Someone wrote the row without holding the lock (an admin revoke, a stalled holder
        // fenced out): their state wins; the caller sees a transient failure.
        logger.error({ connection: row.id }, err.message);
        throw new WarrantError('refresh_unavailable', `connection ${row.id} changed during its refresh; try again`, { connection: row.id, retry_after: 1 });
      }
      throw err;
    }
  }

  async function flow(id: string, minTtlMs: number, req: TokenRequest): Promise<FreshToken> {
    const rejected = req.rejectedToken;
    const actor = req.actor ?? 'system';
    const check = async (row: ConnectionRow | undefined) => {
      if (!row) throw notFound(`connection ${id}`);
      const bad = unusable(row);
      if (bad) throw await bad;
      const due = req.refreshedAtOrBefore !== undefined && (row.last_refreshed_at ?? row.created_at) <= req.refreshedAtOrBefore;
      const good = due ? undefined : await storedIfGood(row, minTtlMs, rejected);
      if (good) return good;
      if (row.next_attempt_at !== null && row.next_attempt_at > clock.now()) return duringBackoff(row);
      return undefined;
    };
    const before = await check(await store.connections.get(id));
    if (before) return before;
    return locks.withLock(`connection:${id}`, lockOptions, async (fence) => {
      // Re-read under the lock: another instance may have refreshed while we waited.
      const row = await store.connections.get(id);
      const now = await check(row);
      if (now) return now;
      return refreshLocked(row!, fence, actor);
    });
  }

  async function getFreshToken(id: string, req: TokenRequest = {}): Promise<FreshToken> {
    const minTtlMs = Math.max(0, (req.minTtlSeconds ?? 0) * 1000);
    const cached = req.refreshedAtOrBefore === undefined ? cache.get(id) : undefined;
    if (cached && cached.accessToken !== req.rejectedToken && isFresh(clock.now(), cached.expiresAt, cached.lifetimeMs, minTtlMs, timing)) {
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

  return {
    getFreshToken,
    /** Forget the cached token of a connection (after import, revoke, re-connect). */
    invalidate(id: string) {
      cache.delete(id);
    },
    /** For tests and metrics. */
    cacheSize: () => cache.size,
  };
}

export type TokenService = ReturnType<typeof createTokenService>;
