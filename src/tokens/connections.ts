import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { WarrantError, invalidRequest, notFound } from '../errors/index.ts';
import { OAuthCallError, classify, type TokenSet } from '../oauth/index.ts';
import { grantedScopes, type Provider } from '../providers/index.ts';
import type { ConnectionRow, ConnectionStatus, Db, Store } from '../store/index.ts';
import type { AuditInput, AuditLog, EventBus } from '../events/index.ts';
import { checkParams, type ClientResolver } from './clients.ts';
import { lifetimeOf, parseJson, tokenLifetimeSeconds, type Clock, type TokenService } from './service.ts';
import { refreshDueAt, type TimingSettings } from './timing.ts';
import { iso } from '../util/time.ts';
import { NO_TAGS, tagColumns, tagPatchProblem, tagsOf, type Labels, type TagFilter, type TagPatch, type Tags } from '../util/tags.ts';

export const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('base64url')}`;

/** What the API shows of a connection: never a token. */
export interface ConnectionView {
  id: string;
  provider: string;
  environment: string;
  owner: string;
  status: ConnectionStatus;
  expires_at: string | null;
  scopes: string[];
  requested_scopes: string[];
  missing_scopes: string[];
  last_refreshed_at: string | null;
  last_error?: string;
  /** The IdP account the grant belongs to, when the IdP said. */
  account?: string;
  created_at: string;
  /** Tags (util/tags.ts): the product's end user and organization ids, and free labels. */
  end_user: string | null;
  organization: string | null;
  labels: Labels;
}


export function viewOf(row: ConnectionRow): ConnectionView {
  const scopes = parseJson<string[]>(row.scopes, []);
  const requested = parseJson<string[]>(row.requested_scopes, []);
  return {
    id: row.id,
    provider: row.provider,
    environment: row.environment,
    owner: row.owner,
    status: row.status,
    expires_at: iso(row.expires_at),
    scopes,
    requested_scopes: requested,
    missing_scopes: requested.filter((s) => !scopes.includes(s)),
    last_refreshed_at: iso(row.last_refreshed_at),
    ...(row.last_error ? { last_error: row.last_error } : {}),
    ...(row.subject ? { account: row.subject } : {}),
    created_at: new Date(row.created_at).toISOString(),
    ...tagsOf(row),
  };
}

export interface ImportInput {
  provider: string;
  environment?: string;
  owner: string;
  access_token?: string;
  refresh_token?: string;
  expires_in?: number;
  scopes: string[];
  /** Connection params (`instance_url`, `cloud_id`, `realm_id`, JWT `subject` …). */
  params?: Record<string, string>;
  /** PEM private key of a jwt_bearer service account; sealed like every other secret. */
  private_key?: string;
  end_user?: string;
  organization?: string;
  labels?: Labels;
}

export interface RevocationReport {
  id: string;
  revoked: boolean;
  verified: boolean;
  /**
   * How the revocation was checked: introspection (RFC 7662), a refresh with the grant, or an API
   * call with the access token (`revocation.verify_path`); `verified` says what the check found.
   */
  verification: 'introspection' | 'refresh_refused' | 'api_refused' | 'none';
  detail: string;
  deleted: boolean;
  /** The HTTP status of the answer the verification rests on (introspection, token endpoint, API); the proof in the audit. */
  idp_status?: number;
  /** When the verification was made (epoch ms). */
  checked_at?: number;
}

/** Extra writes committed with a revocation (offboarding records its outcome); answers audit entries to append. */
export type RevocationRecorder = (report: RevocationReport, row: ConnectionRow, trx: Db) => Promise<AuditInput[]>;

export interface ConnectionServiceDeps {
  store: Store;
  catalog: Map<string, Provider>;
  tokens: TokenService;
  clients: ClientResolver;
  audit: AuditLog;
  bus: EventBus;
  clock: Clock;
  logger: Logger;
  timing: TimingSettings;
}

/** The members of a tag change that were given (undefined ones dropped; null kept: it clears). */
export function definedTags(patch: TagPatch): TagPatch {
  return Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as TagPatch;
}

export function createConnectionService(deps: ConnectionServiceDeps) {
  const { store, catalog, clock, audit, bus } = deps;

  function providerFor(id: string, field = 'provider'): Provider {
    const p = catalog.get(id);
    if (!p) throw invalidRequest(field, `unknown provider ${id}`);
    return p;
  }

  function environmentFor(p: Provider, environment: string | undefined): string {
    const env = environment ?? (p.environments.production ? 'production' : Object.keys(p.environments)[0]!);
    if (!p.environments[env]) throw invalidRequest('environment', `${p.id} has no environment ${env} (it has ${Object.keys(p.environments).join(', ')})`);
    return env;
  }

  /**
   * Writes a new connection, or new tokens into an existing one (re-connect), with its sealed
   * secrets and an audit entry, in one transaction.
   */
  async function saveGrant(input: {
    existing?: ConnectionRow;
    provider: Provider;
    environment: string;
    owner: string;
    tokens: Pick<TokenSet, 'access_token' | 'refresh_token' | 'expires_in' | 'scope'>;
    requestedScopes: string[];
    params: Record<string, string>;
    privateKey?: string;
    /** The IdP account the grant belongs to, when known. */
    subject?: string;
    /** A new connection's tags; a re-connect (`existing`) keeps the connection's own. */
    tags?: Partial<Tags>;
    actor: string;
    event: string;
  }): Promise<ConnectionRow> {
    const { provider, tokens } = input;
    const now = clock.now();
    const lifetime = tokenLifetimeSeconds(tokens, provider);
    // No token yet (client credentials, JWT bearer): born expired, so the first use mints one.
    const expiresAt = !tokens.access_token ? now : lifetime === null ? null : now + lifetime * 1000;
    const granted = grantedScopes(provider, tokens.scope, input.requestedScopes, !!tokens.refresh_token) ?? input.requestedScopes;
    const id = input.existing?.id ?? newId('con');
    const fields = {
      provider: provider.id,
      environment: input.environment,
      owner: input.owner,
      status: 'active' as const,
      scopes: JSON.stringify(granted),
      requested_scopes: JSON.stringify(input.requestedScopes),
      params: JSON.stringify(input.params),
      ...(input.subject ? { subject: input.subject } : {}),
      expires_at: expiresAt,
      refresh_due_at:
        provider.auth === 'api_key' || provider.auth === 'basic'
          ? null
          : !tokens.access_token
            ? now
            : refreshDueAt(now, expiresAt, lifetime === null ? null : lifetime * 1000, deps.timing, provider.refresh_token_idle_timeout),
      last_refreshed_at: now,
      last_error: null,
      failure_count: 0,
      next_attempt_at: null,
      // A new consent (connect, re-connect; an import counts from its import): absolute
      // refresh-token lifetimes start again, and so do the expiry notices (expiry-notices.ts).
      grant_started_at: now,
      expiry_notice: null,
      // The refresh token or private key held from now: its rotation schedule starts (rotation-schedules.ts).
      credential_issued_at: now,
      updated_at: now,
    };
    const entries = await store.transaction(async (trx) => {
      // Locked until commit (store/owners.ts): an offboarded owner gets no new grant, and an
      // offboarding running now either finds this connection or is seen here.
      if ((await store.owners.claim(input.owner, now, trx)).status === 'offboarded') {
        throw new WarrantError('conflict', `owner ${input.owner} is offboarded`, { owner: input.owner });
      }
      const tags: Tags = input.existing ? tagsOf(input.existing) : { ...NO_TAGS, ...input.tags };
      if (input.existing) await store.connections.update(id, fields, trx);
      else await store.connections.insert({ id, ...fields, ...tagColumns(tags), created_at: now }, trx);
      const key = (field: string) => ({ scope: 'connection', ref: id, field });
      if (input.existing) await store.vault.delete({ scope: 'connection', ref: id }, trx);
      if (tokens.access_token) await store.vault.put(key('access_token'), tokens.access_token, trx);
      if (tokens.refresh_token) await store.vault.put(key('refresh_token'), tokens.refresh_token, trx);
      if (input.privateKey) await store.vault.put(key('private_key'), input.privateKey, trx);
      return audit.append(
        {
          type: input.event,
          actor: input.actor,
          subject: `connection:${id}`,
          data: {
            provider: provider.id,
            environment: input.environment,
            owner: input.owner,
            scopes: granted,
            missing_scopes: input.requestedScopes.filter((s) => !granted.includes(s)),
            has_refresh_token: !!tokens.refresh_token,
            end_user: tags.end_user,
            organization: tags.organization,
            labels: tags.labels,
          },
        },
        trx,
      );
    });
    bus.publish(entries);
    await deps.tokens.invalidate(id);
    return (await store.connections.get(id))!;
  }

  async function get(id: string): Promise<ConnectionRow> {
    const row = await store.connections.get(id);
    if (!row) throw notFound(`connection ${id}`);
    return row;
  }

  return {
    providerFor,
    environmentFor,
    saveGrant,
    get,

    async list(filter: { owner?: string; status?: ConnectionStatus; provider?: string } & TagFilter) {
      return store.connections.list(filter);
    },

    /** POST /v1/connections: import a grant obtained elsewhere. */
    async importGrant(input: ImportInput, actor: string): Promise<ConnectionRow> {
      const provider = providerFor(input.provider);
      const environment = environmentFor(provider, input.environment);
      if (provider.auth === 'jwt_bearer' && !input.private_key) throw invalidRequest('private_key', `required for ${provider.id} (jwt_bearer)`);
      if ((provider.auth === 'oauth2' || provider.auth === 'api_key' || provider.auth === 'basic') && !input.access_token) {
        throw invalidRequest('access_token', `required for ${provider.id} (${provider.auth})`);
      }
      const params = input.params ?? {};
      checkParams(provider, params);
      for (const [name, def] of Object.entries(provider.connection_params ?? {})) {
        if (def.from === 'connection' && !params[name]) throw invalidRequest(`params.${name}`, `required by ${provider.id}${def.description ? ` (${def.description})` : ''}`);
      }
      const tags: TagPatch = { end_user: input.end_user, organization: input.organization, labels: input.labels };
      const problem = tagPatchProblem(tags);
      if (problem) throw invalidRequest(problem.field, problem.detail);
      return saveGrant({
        provider,
        environment,
        owner: input.owner,
        tags: definedTags(tags),
        tokens: { access_token: input.access_token ?? '', refresh_token: input.refresh_token, expires_in: input.expires_in },
        requestedScopes: input.scopes,
        params,
        privateKey: input.private_key,
        actor,
        event: 'connection.imported',
      });
    },

    /**
     * PATCH /v1/connections/{id}: changes the connection's tags, with a `connection.tags_updated`
     * audit entry when anything changed. Not a token write: a refresh in flight is not disturbed.
     */
    async setTags(id: string, patch: TagPatch, actor: string): Promise<ConnectionRow> {
      const problem = tagPatchProblem(patch);
      if (problem) throw invalidRequest(problem.field, problem.detail);
      const given = definedTags(patch);
      if (!Object.keys(given).length) throw invalidRequest('body', 'give end_user, organization, labels, or several');
      const entries = await store.transaction(async (trx) => {
        const row = await store.connections.get(id, trx);
        if (!row) throw notFound(`connection ${id}`);
        const before = tagsOf(row);
        const after: Tags = { ...before, ...given } as Tags;
        if (JSON.stringify(tagColumns(before)) === JSON.stringify(tagColumns(after))) return [];
        await store.tags.set('connections', id, given, trx);
        return audit.append(
          { type: 'connection.tags_updated', actor, subject: `connection:${id}`, data: { provider: row.provider, owner: row.owner, ...after, previous: before } },
          trx,
        );
      });
      bus.publish(entries);
      return get(id);
    },

    /** POST /v1/connections/{id}/refresh: refresh now, whatever the expiry. */
    async forceRefresh(id: string, actor: string) {
      const row = await get(id);
      return deps.tokens.getFreshToken(id, { refreshedAtOrBefore: row.last_refreshed_at ?? row.created_at, force: true, actor });
    },

    /**
     * DELETE /v1/connections/{id}: revoke at the IdP (RFC 7009, or the provider's `revocation`
     * shape), then verify the grant is dead — introspection (RFC 7662) says inactive, a refresh is
     * refused, or the API refuses the access token (`verify_path`) — and only then delete.
     * A revocation that could not be made for a transient reason keeps the connection (and its
     * tokens) so it can be retried; the report says what was and was not verified.
     */
    async revoke(id: string, actor: string, opts: { record?: RevocationRecorder } = {}): Promise<RevocationReport> {
      const row = await get(id);
      const provider = catalog.get(row.provider);
      const secrets = await store.vault.getAll('connection', id);
      const report: RevocationReport = { id, revoked: false, verified: false, verification: 'none', detail: '', deleted: false };
      const hint = provider?.revocation_token ?? 'refresh_token';
      const token = secrets[hint] ?? secrets.refresh_token ?? secrets.access_token;
      if (!provider || provider.auth === 'api_key' || provider.auth === 'basic' || !token) {
        report.detail = 'nothing to revoke at the IdP (static credential or no token); revoke it in the provider console';
      } else {
        const client = deps.clients(provider, row.environment, parseJson(row.params, {}));
        const tokenHint = secrets[hint] ? hint : secrets.refresh_token ? 'refresh_token' : 'access_token';
        if (!client.endpoints.revocation_url) {
          report.detail = `${provider.id} has no revocation endpoint; revoke the grant in the provider console`;
        } else {
          try {
            await client.revoke(token, tokenHint);
            report.revoked = true;
          } catch (err) {
            const e = classify(err, 'revocation');
            if (e.kind === 'transient') {
              throw new WarrantError('upstream_unavailable', `the IdP could not revoke the grant right now (${e.error}); the connection is kept, try again`, { retry_after: 30 }, { cause: e });
            }
            report.detail = `the IdP refused the revocation (${e.error})`;
          }
        }
        // An access token past its expiry is refused by any API: that would prove nothing.
        const accessTokenLive = row.expires_at === null || row.expires_at > clock.now() + 5_000;
        const verification = await verifyDead(client, provider, secrets, tokenHint, accessTokenLive);
        report.verified = verification.dead;
        report.verification = verification.how;
        report.detail ||= verification.detail;
        if (verification.status !== undefined) report.idp_status = verification.status;
        report.checked_at = clock.now();
      }
      const entries = await store.transaction(async (trx) => {
        await store.vault.delete({ scope: 'connection', ref: id }, trx);
        await trx.deleteFrom('grants').where('connection_id', '=', id).execute();
        await trx.deleteFrom('credential_rotations').where('ref', '=', id).where('kind', 'in', ['refresh_token', 'private_key']).execute();
        await store.connections.delete(id, trx);
        return audit.append(
          {
            type: 'connection.revoked',
            actor,
            subject: `connection:${id}`,
            // The proof: how it was verified, the IdP's answer status, when; never token material.
            data: {
              provider: row.provider,
              owner: row.owner,
              revoked: report.revoked,
              verified: report.verified,
              verification: report.verification,
              detail: report.detail,
              idp_status: report.idp_status ?? null,
              checked_at: report.checked_at === undefined ? null : new Date(report.checked_at).toISOString(),
              // The row is deleted below: the tags travel in the entry (webhooks route on them).
              ...tagsOf(row),
            },
          },
          trx,
        ).then(async (revoked) => [...revoked, ...(opts.record ? await audit.append(await opts.record(report, row, trx), trx) : [])]);
      });
      bus.publish(entries);
      await deps.tokens.invalidate(id);
      report.deleted = true;
      return report;
    },
  };

  async function verifyDead(
    client: ReturnType<ClientResolver>,
    provider: Provider,
    secrets: Record<string, string>,
    hint: 'refresh_token' | 'access_token',
    accessTokenLive: boolean,
  ): Promise<{ dead: boolean; how: RevocationReport['verification']; detail: string; status?: number }> {
    const token = secrets[hint]!;
    let unverified = 'the provider offers no way to verify the revocation';
    if (client.endpoints.introspection_url) {
      try {
        const r = await client.introspect(token, hint);
        return r.active
          ? { dead: false, how: 'introspection', detail: 'introspection still reports the grant active', status: 200 }
          : { dead: true, how: 'introspection', detail: 'introspection reports the grant inactive', status: 200 };
      } catch (err) {
        deps.logger.warn({ err: classify(err, 'introspection').message }, 'revocation check by introspection failed');
      }
    }
    if (provider.auth === 'oauth2' && secrets.refresh_token) {
      try {
        const fresh = await client.refresh(secrets.refresh_token);
        // The grant is alive: revoke what the check just minted too, so it does not linger.
        await client.revoke(fresh.refresh_token ?? fresh.access_token, fresh.refresh_token ? 'refresh_token' : 'access_token').catch(() => {});
        return { dead: false, how: 'refresh_refused', detail: 'a refresh with the revoked grant still succeeded', status: 200 };
      } catch (err) {
        const e = err instanceof OAuthCallError ? err : classify(err, 'refresh');
        if (e.kind === 'terminal') return { dead: true, how: 'refresh_refused', detail: `a refresh with the grant is refused (${e.error})`, ...(e.status === undefined ? {} : { status: e.status }) };
        unverified = `could not verify: the refresh check failed (${e.error})`;
      }
    }
    if (provider.revocation?.verify_path && secrets.access_token) {
      if (!accessTokenLive) return { dead: false, how: 'none', detail: 'could not verify: the access token had expired, so an API refusal would prove nothing' };
      const check = await client.checkTokenRefused(secrets.access_token);
      const status = check.status === undefined ? {} : { status: check.status };
      if (check.outcome === 'refused') return { dead: true, how: 'api_refused', detail: check.detail, ...status };
      if (check.outcome === 'accepted') return { dead: false, how: 'api_refused', detail: check.detail, ...status };
      unverified = check.detail;
    }
    return { dead: false, how: 'none', detail: unverified };
  }
}

export type ConnectionService = ReturnType<typeof createConnectionService>;
export { lifetimeOf };
