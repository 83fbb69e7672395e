import { randomBytes } from 'node:crypto';
import { hashSecret, safeEqual } from '../crypto/index.ts';
import { WarrantError, invalidRequest } from '../errors/index.ts';
import { calculatePKCECodeChallenge, generateRandomCodeVerifier, generateRandomState } from '../oauth/index.ts';
import type { Provider } from '../providers/index.ts';
import type { ConnectionRow, ConnectSessionRow, Store } from '../store/index.ts';
import { cookieName, newBrowserSecret, type BrowserCookie } from './browser.ts';
import { checkParams, type ClientResolver } from './clients.ts';
import { sessionScopes } from './connect-scopes.ts';
import { newId, type ConnectionService } from './connections.ts';
import { reconnectable } from './expiry-notices.ts';
import { parseJson, type Clock } from './service.ts';
import { NO_TAGS, tagColumns, tagPatchProblem, type Labels } from '../util/tags.ts';

// Starting a connect session: a Warrant start URL holding a single-use token, whose first open
// binds the session to that browser (browser.ts), makes the OAuth `state` and sends the browser
// to the IdP. The callback side is connect.ts.

export interface ConnectSessionInput {
  provider: string;
  environment?: string;
  owner: string;
  /** Checked against the provider's scope rules (connect-scopes.ts); absent: its `default_scopes`. */
  scopes?: string[];
  redirect_to?: string;
  /** Connection params known before consent (e.g. a tenant's `shop` or `cloud_id`). */
  params?: Record<string, string>;
  /** Why the owner is asked, one sentence shown on the hosted connect page. */
  purpose?: string;
  /** Tags the connection gets (util/tags.ts); a re-connect session carries the connection's own. */
  end_user?: string | null;
  organization?: string | null;
  labels?: Labels;
}

/** What the hosted connect page shows of a session whose start URL is still unopened. */
export interface SessionPreview {
  session: ConnectSessionRow;
  provider: Provider;
  scopes: string[];
  purpose?: string;
}

/** Why a start URL cannot be used: the hosted page says which (410 for `expired`, else 400). */
export type StartRefusal = 'invalid' | 'used' | 'expired' | 'reconnect_done';

export interface StartedSession {
  id: string;
  /** Warrant's start URL: its first open binds the browser and redirects to the IdP (for programs). */
  authorize_url: string;
  /** The hosted connect page for the owner (same token): shows what is asked, Continue goes on to the IdP. */
  connect_url: string;
  expires_at: string;
}

export function createSessionStarter(deps: {
  store: Store;
  connections: ConnectionService;
  clients: ClientResolver;
  clock: Clock;
  publicUrl: string;
  /** The redirect URI the authorization request carries for a provider (providers/redirect.ts). */
  redirectUriFor: (provider: Provider) => string;
  sessionTtlSeconds: number;
}) {
  const { store, clock, connections } = deps;
  const refused = () => new WarrantError('invalid_request', 'this link is invalid, was already opened, or has expired; ask for a new one', { field: 't' });
  const refusal = (reason: StartRefusal, detail: string) => new WarrantError('invalid_request', detail, { field: 't', reason });

  async function createSession(input: ConnectSessionInput, opts: { reconnectOf?: ConnectionRow; ttlSeconds?: number } = {}): Promise<StartedSession> {
    const provider = connections.providerFor(input.provider);
    if (provider.auth !== 'oauth2') throw invalidRequest('provider', `${provider.id} does not use the authorization code flow (${provider.auth}); import the credential with POST /v1/connections`);
    const environment = connections.environmentFor(provider, input.environment);
    // The callback would be refused anyway (connections.ts); say so before the owner consents.
    if ((await store.owners.get(input.owner))?.status === 'offboarded') throw new WarrantError('conflict', `owner ${input.owner} is offboarded`, { owner: input.owner });
    if (input.redirect_to && !/^https?:\/\//i.test(input.redirect_to)) throw invalidRequest('redirect_to', 'must be an http(s) URL');
    // A re-connect asks again for what the connection was granted, whatever the catalog says today.
    const scopes = opts.reconnectOf ? [...new Set([...(provider.default_scopes ?? []), ...(input.scopes ?? [])])] : sessionScopes(provider, input.scopes);
    const params = input.params ?? {};
    checkParams(provider, params);
    const tagProblem = tagPatchProblem(input);
    if (tagProblem) throw invalidRequest(tagProblem.field, tagProblem.detail);
    const tags = tagColumns({ end_user: input.end_user ?? NO_TAGS.end_user, organization: input.organization ?? NO_TAGS.organization, labels: input.labels ?? NO_TAGS.labels });
    const client = (() => {
      try {
        return deps.clients(provider, environment, params);
      } catch (err) {
        // A param the IdP's URLs need before consent (Shopify `shop`, Okta `okta_domain`) is the caller's to give.
        const param = err instanceof WarrantError ? err.members.param : undefined;
        if (typeof param === 'string' && params[param] === undefined) throw invalidRequest(`params.${param}`, `required by ${provider.id}`);
        throw err;
      }
    })();
    if (!client.endpoints.authorization_url) throw invalidRequest('provider', `${provider.id} has no authorization_url`);
    const verifier = provider.pkce ? generateRandomCodeVerifier() : undefined;
    const start = randomBytes(32).toString('base64url');
    const now = clock.now();
    const id = newId('cs');
    const expiresAt = now + (opts.ttlSeconds ?? deps.sessionTtlSeconds) * 1000;
    await store.transaction(async (trx) => {
      await trx
        .insertInto('connect_sessions')
        .values({
          id,
          provider: provider.id,
          environment,
          owner: input.owner,
          scopes: JSON.stringify(scopes),
          params: JSON.stringify(params),
          ...tags,
          redirect_to: input.redirect_to ?? null,
          // No state until the start URL is opened (and the session bound to that browser).
          state_hash: `unopened:${randomBytes(12).toString('base64url')}`,
          start_hash: hashSecret(start),
          status: 'pending',
          connection_id: opts.reconnectOf?.id ?? null,
          reconnect_of: opts.reconnectOf?.id ?? null,
          error: null,
          expires_at: expiresAt,
          created_at: now,
          completed_at: null,
        })
        .execute();
      if (verifier) await store.vault.put({ scope: 'connect_session', ref: id, field: 'code_verifier' }, verifier, trx);
      // Kept with the session's other values until it ends (no column: it is only shown while pending).
      if (input.purpose) await store.vault.put({ scope: 'connect_session', ref: id, field: 'purpose' }, input.purpose, trx);
    });
    return {
      id,
      authorize_url: `${deps.publicUrl}/connect/${id}?t=${start}`,
      connect_url: `${deps.publicUrl}/connect/${id}/review?t=${start}`,
      expires_at: new Date(expiresAt).toISOString(),
    };
  }

  /** The session of an unopened start URL, or a refusal saying why it cannot be used; consumes nothing. */
  async function checkStart(id: string, token: string): Promise<ConnectSessionRow> {
    const row = await store.db.selectFrom('connect_sessions').selectAll().where('id', '=', id).executeTakeFirst();
    // Without the token nothing tells an opened link from a finished one: the id alone reveals no outcome.
    if (row && !row.start_hash) throw refusal('used', 'this link was already used; links work once');
    if (!row || !row.start_hash || !safeEqual(hashSecret(token), row.start_hash)) throw refusal('invalid', 'this link is not valid; ask for a new one');
    if (row.expires_at <= clock.now()) throw refusal('expired', 'this link has expired; ask for a new one');
    try {
      await reconnectTarget(row);
    } catch (err) {
      throw refusal('reconnect_done', (err as Error).message);
    }
    return row;
  }

  /** GET connect_url: what the hosted page shows. The token stays unused, so Continue can use it. */
  async function preview(id: string, token: string): Promise<SessionPreview> {
    const session = await checkStart(id, token);
    const purpose = await store.vault.get({ scope: 'connect_session', ref: id, field: 'purpose' });
    return { session, provider: connections.providerFor(session.provider), scopes: parseJson<string[]>(session.scopes, []), ...(purpose ? { purpose } : {}) };
  }

  /** A re-connect link only works while its connection waits for one (dead, or announced to die). */
  async function reconnectTarget(session: ConnectSessionRow): Promise<ConnectionRow | undefined> {
    if (!session.reconnect_of) return undefined;
    const row = await store.connections.get(session.reconnect_of);
    if (!row || !reconnectable(row)) {
      throw new WarrantError('conflict', `connection ${session.reconnect_of} ${row ? `is ${row.status}` : 'no longer exists'}: this re-connect link is no longer valid`);
    }
    return row;
  }

  /**
   * The first (and only) open of a start URL: claims it atomically, binds the session to this
   * browser and sends it to the IdP. A second open, from any browser, is refused.
   */
  async function open(id: string, token: string): Promise<{ location: string; cookie: BrowserCookie }> {
    const row = await store.db.selectFrom('connect_sessions').selectAll().where('id', '=', id).executeTakeFirst();
    const now = clock.now();
    if (!row || !row.start_hash || row.status !== 'pending' || row.expires_at <= now || !safeEqual(hashSecret(token), row.start_hash)) throw refused();
    await reconnectTarget(row);
    const state = generateRandomState();
    const browser = newBrowserSecret();
    // A re-connect link may travel for days; once opened, the IdP leg gets a session's time.
    const expiresAt = Math.min(row.expires_at, now + deps.sessionTtlSeconds * 1000);
    const claimed = await store.db
      .updateTable('connect_sessions')
      .set({ start_hash: null, browser_hash: hashSecret(browser), state_hash: hashSecret(state), expires_at: expiresAt })
      .where('id', '=', id)
      .where('start_hash', '=', row.start_hash)
      .where('status', '=', 'pending')
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1) throw refused();
    const provider = connections.providerFor(row.provider);
    const client = deps.clients(provider, row.environment, parseJson(row.params, {}));
    const verifier = await store.vault.get({ scope: 'connect_session', ref: id, field: 'code_verifier' });
    // Kept with the session: the callback must arrive at this URI's path, and the token request
    // repeats it exactly (RFC 6749 §4.1.3). A session without one was opened before per-provider
    // paths and used /oauth/callback.
    const redirectUri = deps.redirectUriFor(provider);
    await store.vault.put({ scope: 'connect_session', ref: id, field: 'redirect_uri' }, redirectUri);
    const location = client.authorizationUrl({
      redirectUri,
      scopes: parseJson<string[]>(row.scopes, []),
      state,
      codeChallenge: verifier ? await calculatePKCECodeChallenge(verifier) : undefined,
    });
    return { location, cookie: { name: cookieName(id), value: browser, maxAgeSeconds: Math.ceil((expiresAt - now) / 1000) } };
  }

  return { createSession, open, reconnectTarget, checkStart, preview };
}
