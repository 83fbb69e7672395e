import type { Logger } from 'pino';
import { WarrantError } from '../errors/index.ts';
import { OAuthCallError, classify, outcomeUnknown, type TokenSet } from '../oauth/index.ts';
import { grantedScopes, type Provider } from '../providers/index.ts';
import { isStoreUnavailable, type ConnectionPatch, type ConnectionRow, type Store } from '../store/index.ts';
import { sleep } from '../locks/index.ts';
import type { AuditInput, AuditLog, EventBus } from '../events/index.ts';
import type { ClientResolver } from './clients.ts';
import { backoffMs, refreshDueAt, type BackoffSettings, type TimingSettings } from './timing.ts';
import { expiryFrom } from './outage.ts';
import { replayAllowed, rotatesStrictly } from './rotation.ts';

// One refresh at the IdP and what it leaves in the store, for a caller that holds the
// connection's claim (tokens/service.ts). Every write is conditional on that claim: the store,
// not the lock service, decides whose result counts.

export interface Claim {
  /** The store's fence for this claim (connections.refresh_fence after the claim). */
  fence: number;
  /** The row's version when claimed: a write by anyone else since (an admin revoke) wins. */
  version: number;
  /** Aborted when the lock behind the claim was lost: no IdP call is started after that. */
  signal: AbortSignal;
}

export interface Issued {
  accessToken: string;
  /** The row as written (or as found), for the service's cache. */
  row: ConnectionRow;
  refreshed: boolean;
}

export interface RefreshDeps {
  store: Store;
  audit: AuditLog;
  bus: EventBus;
  clients: ClientResolver;
  clock: { now(): number };
  logger: Logger;
  timing: TimingSettings;
  backoff: { transient: BackoffSettings; misconfigured: BackoffSettings };
  reauthUrl(connection: ConnectionRow): Promise<string>;
  onRefresh?(provider: string, outcome: 'ok' | 'terminal' | 'transient' | 'misconfigured'): void;
}

/** The refresh failed; `row` is the connection as it now stands (for serving a stale token). */
export class RefreshFailed extends Error {
  constructor(
    readonly row: ConnectionRow,
    readonly failure: OAuthCallError,
  ) {
    super(failure.message);
  }
}

export const parseJson = <T>(text: string, fallback: T): T => {
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
};

/** Seconds a token response says it lives, else the catalog's lifetime, else unknown (null). */
export function tokenLifetimeSeconds(tokens: Pick<TokenSet, 'expires_in'>, provider: Provider): number | null {
  if (typeof tokens.expires_in === 'number' && tokens.expires_in > 0) return tokens.expires_in;
  return provider.token_lifetime ?? null;
}

/** What an agent is told while a connection waits for an operator after an unknown refresh outcome. */
export const indeterminateDetail = (row: Pick<ConnectionRow, 'id' | 'provider'>) =>
  `the outcome of the last refresh of connection ${row.id} is unknown and ${row.provider} rotates refresh tokens: the stored one is not sent again ` +
  "outside the provider's grace period (an admin may force a refresh: POST /v1/connections/{id}/refresh, or the owner re-connects)";

/**
 * Runs a store write again while the store is unreachable, for up to 10 s. Used for what must not
 * be lost: the answer of a refresh the IdP has already rotated exists nowhere else. A failed
 * transaction committed nothing, so running it again is safe (a commit whose answer was lost is
 * caught by the caller's compare-and-swap).
 */
async function durably<T>(write: () => Promise<T>, budgetMs = 10_000): Promise<T> {
  const deadline = Date.now() + budgetMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (!isStoreUnavailable(err) || Date.now() >= deadline) throw err;
      await sleep(Math.min(1_000, 50 * 2 ** attempt));
    }
  }
}

const lostClaim = (row: ConnectionRow) =>
  new WarrantError('refresh_unavailable', `connection ${row.id} changed during its refresh; try again`, { connection: row.id, retry_after: 1 });

/**
 * `invalid_client` is Warrant's app settings being wrong (misconfigured), except where the client
 * credentials are the grant itself (`client_refusal: terminal`, an MCP server registered for client
 * credentials): their refusal is a revocation, so the connection ends with one alert.
 */
function refusedClientEndsGrant(provider: Provider, failure: OAuthCallError): OAuthCallError {
  if (provider.client_refusal !== 'terminal' || failure.error !== 'invalid_client') return failure;
  return new OAuthCallError('terminal', failure.error, failure.status, `${failure.message} (the client credentials are this grant: it has ended)`, undefined, { cause: failure.cause });
}

export function createRefresher(deps: RefreshDeps) {
  const { store, audit, bus, clock, logger, timing } = deps;
  const subjectOf = (row: ConnectionRow) => `connection:${row.id}`;

  /** Gets new tokens from the IdP and commits them, or records the failure; under `claim`. */
  async function refresh(row: ConnectionRow, provider: Provider, claim: Claim, actor: string, force = false): Promise<Issued> {
    const params = parseJson<Record<string, string>>(row.params, {});
    const secrets = await store.vault.getAll('connection', row.id);
    if (provider.auth === 'api_key' || provider.auth === 'basic') {
      if (!secrets.access_token) throw new WarrantError('conflict', `connection ${row.id} holds no credential`);
      await store.connections.releaseClaim(row.id, claim.fence);
      return { accessToken: secrets.access_token, row, refreshed: false };
    }
    const usesRefreshToken = provider.auth === 'oauth2';
    if (usesRefreshToken && !force && !replayAllowed(row, provider, clock.now())) {
      await store.connections.releaseClaim(row.id, claim.fence);
      throw new RefreshFailed(row, indeterminate(row));
    }
    if (claim.signal.aborted) {
      // The lock went away before we asked the IdP: let the next holder do it.
      await store.connections.releaseClaim(row.id, claim.fence);
      throw new WarrantError('refresh_unavailable', `the lock on connection ${row.id} was lost; try again`, { connection: row.id, retry_after: 1 });
    }
    let tokens: TokenSet;
    let client: ReturnType<ClientResolver> | undefined;
    const sentAt = clock.now();
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
      const failure = refusedClientEndsGrant(provider, classify(err, `${row.provider} token`));
      deps.onRefresh?.(row.provider, failure.kind);
      const unknown = usesRefreshToken && rotatesStrictly(provider) && outcomeUnknown(failure);
      throw new RefreshFailed(await (unknown ? persistIndeterminate(row, provider, claim, failure, actor) : persistFailure(row, claim, failure, actor)), unknown ? indeterminate(row) : failure);
    }
    deps.onRefresh?.(row.provider, 'ok');
    const written = await persistSuccess(row, provider, claim, tokens, actor, sentAt, secrets.refresh_token);
    if (written.expires_at === null && client?.endpoints.introspection_url) return { accessToken: tokens.access_token, row: await learnExpiry(written, provider, client, tokens.access_token), refreshed: true };
    return { accessToken: tokens.access_token, row: written, refreshed: true };
  }

  const indeterminate = (row: ConnectionRow) => new OAuthCallError('transient', 'refresh_indeterminate', undefined, indeterminateDetail(row));

  async function persistSuccess(row: ConnectionRow, provider: Provider, claim: Claim, tokens: TokenSet, actor: string, sentAt: number, usedRefreshToken?: string): Promise<ConnectionRow> {
    const now = clock.now();
    const lifetime = tokenLifetimeSeconds(tokens, provider);
    const expiresAt = lifetime === null ? null : expiryFrom(sentAt, lifetime);
    const lifetimeMs = lifetime === null ? null : lifetime * 1000;
    const granted = grantedScopes(provider, tokens.scope, parseJson<string[]>(row.requested_scopes, []), true);
    const recovered = row.failure_count > 0 || row.status === 'error' || row.refresh_indeterminate_at !== null;
    const patch: ConnectionPatch = {
      status: 'active',
      expires_at: expiresAt,
      refresh_due_at: refreshDueAt(now, expiresAt, lifetimeMs, timing, provider.refresh_token_idle_timeout),
      last_refreshed_at: now,
      failure_count: 0,
      next_attempt_at: null,
      last_error: null,
      refresh_indeterminate_at: null,
      ...(granted ? { scopes: JSON.stringify(granted) } : {}),
      // A new refresh token starts its rotation schedule's clock (rotation-schedules.ts).
      ...(tokens.refresh_token && tokens.refresh_token !== usedRefreshToken ? { credential_issued_at: now } : {}),
      updated_at: now,
    };
    const events: AuditInput[] = [
      { type: 'connection.refreshed', actor, subject: subjectOf(row), data: { provider: row.provider, expires_at: expiresAt, rotated: !!tokens.refresh_token } },
    ];
    if (recovered) events.push({ type: 'connection.recovered', actor, subject: subjectOf(row), data: { provider: row.provider, after_failures: row.failure_count } });

    const commit = (write: (trx: Parameters<Parameters<Store['transaction']>[0]>[0]) => Promise<boolean>) =>
      store.transaction(async (trx) => {
        if (!(await write(trx))) return undefined;
        // The rotated refresh token is sealed and committed with the access token before the claim
        // ends: the next claimant always sees the newest one (RFC 9700 §4.14.2).
        await store.vault.put({ scope: 'connection', ref: row.id, field: 'access_token' }, tokens.access_token, trx);
        if (tokens.refresh_token) await store.vault.put({ scope: 'connection', ref: row.id, field: 'refresh_token' }, tokens.refresh_token, trx);
        return audit.append(events, trx);
      });

    let entries = await durably(() => commit((trx) => store.connections.updateIfClaimed(row.id, claim, patch, trx)));
    let version = claim.version + 1;
    if (!entries && tokens.refresh_token) {
      // Our claim was overtaken (we outlived its lease, or someone wrote the row). The IdP has
      // already rotated: throwing this answer away would leave a consumed refresh token in the
      // store. Keep it while the stored refresh token is still the one we used (nobody rotated
      // since) and the connection is still live; otherwise the newer state wins.
      const current = await durably(() => store.connections.get(row.id));
      const stored = current && (await durably(() => store.vault.get({ scope: 'connection', ref: row.id, field: 'refresh_token' })));
      if (current && stored === tokens.refresh_token) {
        // Our commit went through although its answer was lost (the session died at COMMIT).
        return current;
      }
      if (current && current.status !== 'revoked' && current.status !== 'reauth_required' && stored === usedRefreshToken) {
        entries = await durably(() => commit((trx) => store.connections.updateIfVersion(row.id, current.version, { ...patch, refresh_lease_until: null }, trx)));
        version = current.version + 1;
        if (entries) logger.warn({ connection: row.id, provider: row.provider }, 'refresh claim overtaken; the rotated refresh token was kept');
      }
    }
    if (!entries) {
      logger.error({ connection: row.id, provider: row.provider }, 'connection changed while its refresh was in flight; the newer state wins');
      throw lostClaim(row);
    }
    bus.publish(entries);
    if (recovered) logger.info({ connection: row.id, provider: row.provider, owner: row.owner, after_failures: row.failure_count }, 'connection recovered');
    return { ...row, ...patch, version } as ConnectionRow;
  }

  /** The failure's effect on the row, written only while the claim holds; returns the row as it stands. */
  async function persistFailure(row: ConnectionRow, claim: Claim, err: OAuthCallError, actor: string): Promise<ConnectionRow> {
    const now = clock.now();
    if (err.kind === 'terminal') {
      const reauthUrl = await deps.reauthUrl(row);
      const patch: ConnectionPatch = { status: 'reauth_required', last_error: err.error, refresh_due_at: null, next_attempt_at: null, updated_at: now };
      const entry: AuditInput = { type: 'connection.reauth_required', actor, subject: subjectOf(row), data: { provider: row.provider, owner: row.owner, error: err.error, reauth_url: reauthUrl } };
      const entries = await durably(() => store.transaction(async (trx) => ((await store.connections.updateIfClaimed(row.id, claim, patch, trx)) ? audit.append(entry, trx) : undefined)));
      if (!entries) return standing(row);
      bus.publish(entries);
      logger.warn(
        { connection: row.id, provider: row.provider, owner: row.owner, error: err.error, status: err.status ?? null },
        'connection needs re-authorization: its grant was refused by the identity provider',
      );
      return { ...row, ...patch, version: claim.version + 1 } as ConnectionRow;
    }
    const failures = row.failure_count + 1;
    const settings = err.kind === 'misconfigured' ? deps.backoff.misconfigured : deps.backoff.transient;
    const delay = err.retryAfter !== undefined ? Math.max(err.retryAfter * 1000, settings.baseMs / 2) : backoffMs(failures, settings);
    const next = now + delay;
    const status = err.kind === 'misconfigured' ? 'error' : row.status;
    const patch: ConnectionPatch = { status, failure_count: failures, next_attempt_at: next, refresh_due_at: next, last_error: err.error, updated_at: now };
    // One entry per incident, not per retry: the first failure, or a change of status.
    const entry: AuditInput | undefined =
      failures === 1 || status !== row.status
        ? {
            type: status === 'error' ? 'connection.error' : 'connection.refresh_failing',
            actor,
            subject: subjectOf(row),
            data: { provider: row.provider, error: err.error, kind: err.kind, status: err.status ?? null },
          }
        : undefined;
    const entries = await store.transaction(async (trx) =>
      (await store.connections.updateIfClaimed(row.id, claim, patch, trx)) ? (entry ? audit.append(entry, trx) : []) : undefined,
    );
    if (!entries) return standing(row);
    bus.publish(entries);
    // One warn line per incident (its first failure, or the turn to `error`); every retry at debug.
    const fields = { connection: row.id, provider: row.provider, owner: row.owner, error: err.error, kind: err.kind, status: err.status ?? null, failures, retry_in_ms: delay };
    if (status === 'error' && row.status !== 'error') logger.warn(fields, "connection in error: Warrant's client settings for this provider are refused");
    else if (failures === 1) logger.warn(fields, 'token refresh failing; retrying with backoff');
    else logger.debug(fields, 'token refresh failed again');
    return { ...row, ...patch, version: claim.version + 1 } as ConnectionRow;
  }

  /**
   * The IdP may have rotated the refresh token without our seeing the answer. Within the
   * provider's grace period the stored one still works and is retried with backoff; past it (or
   * with none) it is not sent again on its own: one alert, and `refresh_unavailable` once the
   * access token is spent, until an admin forces a refresh or the owner re-connects.
   */
  async function persistIndeterminate(row: ConnectionRow, provider: Provider, claim: Claim, err: OAuthCallError, actor: string): Promise<ConnectionRow> {
    const now = clock.now();
    const since = row.refresh_indeterminate_at ?? now;
    const graceEnds = since + (provider.refresh_token_grace_period ?? 0) * 1000;
    const next = graceEnds > now ? Math.min(graceEnds, now + backoffMs(row.failure_count + 1, deps.backoff.transient)) : null;
    const patch: ConnectionPatch = {
      refresh_indeterminate_at: since,
      failure_count: row.failure_count + 1,
      last_error: 'refresh_indeterminate',
      next_attempt_at: next,
      refresh_due_at: next,
      updated_at: now,
    };
    const first = row.refresh_indeterminate_at === null;
    const entry: AuditInput = {
      type: 'connection.refresh_indeterminate',
      actor,
      subject: subjectOf(row),
      data: { provider: row.provider, owner: row.owner, error: err.error, status: err.status ?? null, grace_period_seconds: provider.refresh_token_grace_period ?? 0 },
    };
    const entries = await store.transaction(async (trx) =>
      (await store.connections.updateIfClaimed(row.id, claim, patch, trx)) ? (first ? audit.append(entry, trx) : []) : undefined,
    );
    if (!entries) return standing(row);
    bus.publish(entries);
    if (first) {
      logger.warn(
        { connection: row.id, provider: row.provider, owner: row.owner, error: err.error, grace_period_seconds: provider.refresh_token_grace_period ?? 0 },
        'refresh outcome unknown at a provider that rotates refresh tokens; not replaying the stored one outside its grace period',
      );
    }
    return { ...row, ...patch, version: claim.version + 1 } as ConnectionRow;
  }

  /** Someone else's write overtook ours: their state is the one to serve from. */
  async function standing(row: ConnectionRow): Promise<ConnectionRow> {
    logger.warn({ connection: row.id, provider: row.provider }, 'refresh claim overtaken; the failure was not recorded');
    return (await store.connections.get(row.id)) ?? row;
  }

  /**
   * No `expires_in` and no catalog lifetime: ask the IdP (RFC 7662 `exp`). Done after the commit,
   * so the extra round trip never widens the window in which a rotated refresh token is unsaved.
   */
  async function learnExpiry(row: ConnectionRow, provider: Provider, client: ReturnType<ClientResolver>, accessToken: string): Promise<ConnectionRow> {
    try {
      const info = await client.introspect(accessToken, 'access_token');
      if (!info.active || !info.exp) return row;
      const now = clock.now();
      const expiresAt = info.exp * 1000;
      const lifetimeMs = expiresAt - (row.last_refreshed_at ?? now);
      const patch = { expires_at: expiresAt, refresh_due_at: refreshDueAt(now, expiresAt, lifetimeMs, timing, provider.refresh_token_idle_timeout), updated_at: now };
      if (await store.connections.updateIfVersion(row.id, row.version, patch)) return { ...row, ...patch, version: row.version + 1 };
    } catch (err) {
      logger.warn({ connection: row.id, err: (err as Error).message }, 'could not learn the token expiry by introspection');
    }
    return row;
  }

  return { refresh };
}

export type Refresher = ReturnType<typeof createRefresher>;
