import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { hashSecret, safeEqual } from '../crypto/index.ts';
import { WarrantError, invalidRequest, isWarrantError, notFound } from '../errors/index.ts';
import { classify, type TokenSet } from '../oauth/index.ts';
import { CALLBACK_PATH, redirectUriOf, type Provider } from '../providers/index.ts';
import type { ConnectionRow, ConnectSessionRow, Store } from '../store/index.ts';
import type { AuditLog, EventBus } from '../events/index.ts';
import { accountOf } from './account.ts';
import { cookieName, readCookie } from './browser.ts';
import { checkParams, type ClientResolver } from './clients.ts';
import { createSessionStarter, type ConnectSessionInput } from './connect-start.ts';
import type { ConnectionService } from './connections.ts';
import { parseJson, type Clock } from './service.ts';
import { discoverTenant } from './tenant-discovery.ts';
import { tagsOf } from '../util/tags.ts';

export type { ConnectSessionInput, SessionPreview, StartedSession, StartRefusal } from './connect-start.ts';

export interface CallbackOutcome {
  session: ConnectSessionRow;
  connection?: ConnectionRow;
  missingScopes: string[];
  /**
   * A re-connect that could not show it came back with the connection's own account: the grant
   * became this new connection, and `pendingFor` (the connection it was meant for) stays as it
   * was until its owner confirms the replacement (reconnect.ts).
   */
  pendingFor?: string;
}

/**
 * The authorization code flow (RFC 6749 §4.1) with PKCE S256 (RFC 7636), bound to one browser.
 * A session is started at a Warrant URL holding a single-use token; its first open sets a
 * cookie, generates the `state` (stored hashed) and redirects to the IdP; the callback consumes
 * the state once, and only from the browser holding the cookie (RFC 9700 §4.7: CSRF and code
 * injection defence beyond `state`).
 */
export function createConnectFlow(deps: {
  store: Store;
  connections: ConnectionService;
  clients: ClientResolver;
  audit: AuditLog;
  bus: EventBus;
  clock: Clock;
  logger: Logger;
  publicUrl: string;
  /** WARRANT_REDIRECT_PER_PROVIDER: `/oauth/callback/{provider}` instead of the shared `/oauth/callback`. */
  redirectPerProvider?: boolean;
  sessionTtlSeconds: number;
  idpTimeoutMs?: number;
}) {
  const { store, clock, connections, logger } = deps;
  const idpTimeoutMs = deps.idpTimeoutMs ?? 10_000;
  const { createSession, open, reconnectTarget, checkStart, preview } = createSessionStarter({ ...deps, redirectUriFor: (p) => redirectUriOf(deps.publicUrl, p, deps.redirectPerProvider) });

  async function finish(session: ConnectSessionRow, patch: { status: 'completed' | 'failed'; error?: string; connection_id?: string }) {
    await store.db
      .updateTable('connect_sessions')
      .set({ status: patch.status, error: patch.error ?? null, connection_id: patch.connection_id ?? session.connection_id, completed_at: clock.now() })
      .where('id', '=', session.id)
      .execute();
    await store.vault.delete({ scope: 'connect_session', ref: session.id });
    return (await store.db.selectFrom('connect_sessions').selectAll().where('id', '=', session.id).executeTakeFirst())!;
  }

  const failed = async (session: ConnectSessionRow, error: string): Promise<CallbackOutcome> => ({ session: await finish(session, { status: 'failed', error }), missingScopes: [] });

  /** Connection params the provider sends back (callback query, token response), checked as they enter. */
  function returnedParams(provider: Provider, from: 'callback' | 'token_response', source: Record<string, unknown>): Record<string, string> {
    const out: Record<string, string> = {};
    const names: Record<string, string> = {};
    for (const [name, def] of Object.entries(provider.connection_params ?? {})) {
      const value = def.from === from ? source[def.field ?? name] : undefined;
      if (typeof value === 'string' && value) {
        out[name] = value;
        names[name] = def.field ?? name;
      }
    }
    checkParams(provider, out, from === 'callback' ? 'query' : 'token_response', names);
    return out;
  }

  /**
   * A re-connect revives the connection only when the IdP shows the grant is the same account's;
   * a different account is refused; an account nobody can tell (or a callback param that moved,
   * e.g. another QuickBooks company) makes a new connection its owner must confirm.
   */
  async function settleReconnect(session: ConnectSessionRow, target: ConnectionRow, grant: Grant): Promise<CallbackOutcome> {
    const { provider, client, tokens, subject, params, scopes } = grant;
    if (target.subject && subject && subject !== target.subject) {
      logger.warn({ session: session.id, connection: target.id, provider: provider.id }, 're-connect refused: a different account consented');
      // Another account's grant: revoking it cannot touch the connection's own.
      await client.revoke(tokens.refresh_token ?? tokens.access_token, tokens.refresh_token ? 'refresh_token' : 'access_token').catch(() => {});
      return failed(session, 'account_mismatch');
    }
    const before = parseJson<Record<string, string>>(target.params, {});
    const moved = Object.entries(provider.connection_params ?? {}).some(([n, d]) => d.from === 'callback' && before[n] !== undefined && before[n] !== params[n]);
    const save = (existing?: ConnectionRow) =>
      connections.saveGrant({
        existing,
        provider,
        environment: session.environment,
        owner: session.owner,
        tokens,
        requestedScopes: scopes,
        params,
        subject,
        // A candidate gets the session's tags (the connection's own, copied when the link was made).
        tags: tagsOf(session),
        actor: `owner:${session.owner}`,
        event: existing ? 'connection.reconnected' : 'connection.created',
      });
    if (target.subject && subject && !moved) return completed(session, await save(target), scopes);
    const reason = moved ? 'params_changed' : 'account_unknown';
    const candidate = await save();
    // Nothing refreshes it until it is confirmed or put to use: its tokens stay what the owner confirms.
    await store.connections.update(candidate.id, { refresh_due_at: null });
    const entries = await deps.audit.append({
      type: 'connection.reconnect_pending',
      actor: `owner:${session.owner}`,
      subject: `connection:${target.id}`,
      data: { provider: provider.id, owner: session.owner, candidate: candidate.id, session: session.id, reason },
    });
    deps.bus.publish(entries);
    logger.warn({ session: session.id, connection: target.id, candidate: candidate.id, reason }, 're-connect made a new connection: its owner must confirm it replaces the old one');
    return { ...(await completed(session, candidate, scopes)), pendingFor: target.id };
  }

  async function completed(session: ConnectSessionRow, connection: ConnectionRow, scopes: string[]): Promise<CallbackOutcome> {
    const granted = parseJson<string[]>(connection.scopes, []);
    return {
      session: await finish(session, { status: 'completed', connection_id: connection.id }),
      connection,
      missingScopes: scopes.filter((s) => !granted.includes(s)),
    };
  }

  type Grant = { provider: Provider; client: ReturnType<ClientResolver>; tokens: TokenSet; subject?: string; params: Record<string, string>; scopes: string[] };

  return {
    createSession: (input: ConnectSessionInput) => createSession(input),
    createReconnectSession: (row: ConnectionRow, ttlSeconds: number) =>
      createSession(
        { provider: row.provider, environment: row.environment, owner: row.owner, scopes: parseJson<string[]>(row.requested_scopes, []), params: parseJson(row.params, {}), ...tagsOf(row) },
        { reconnectOf: row, ttlSeconds },
      ),
    open,
    preview,

    /**
     * The owner declined on the hosted page: the start URL is used up and the session fails with
     * `access_denied`, as if the IdP had said so (RFC 6749 §4.1.2.1).
     */
    async cancel(id: string, token: string): Promise<ConnectSessionRow> {
      const row = await checkStart(id, token);
      const claimed = await store.db
        .updateTable('connect_sessions')
        .set({ start_hash: null })
        .where('id', '=', id)
        .where('start_hash', '=', row.start_hash)
        .where('status', '=', 'pending')
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) !== 1) throw new WarrantError('invalid_request', 'this link was already used; links work once', { field: 't', reason: 'used' });
      logger.info({ session: id, provider: row.provider }, 'connect session cancelled by the owner on the connect page');
      return finish(row, { status: 'failed', error: 'access_denied' });
    },

    /** Opens a start URL (or the hosted page's, the same token) as a browser would; for programs and tests driving the flow without one. */
    async openLink(url: string): Promise<{ location: string; cookieHeader: string }> {
      const u = new URL(url);
      const id = /^\/connect\/([^/]+)(?:\/review)?$/.exec(u.pathname)?.[1] ?? '';
      const { location, cookie } = await open(id, u.searchParams.get('t') ?? '');
      return { location, cookieHeader: `${cookie.name}=${cookie.value}` };
    },

    /** The browser-binding cookie gets `Secure` when browsers reach Warrant over https. */
    secureCookies: deps.publicUrl.startsWith('https://'),

    /** Where an agent-facing `reauth_required` points: the connection in the admin API, not a capability. */
    statusUrl: (row: Pick<ConnectionRow, 'id'>) => `${deps.publicUrl}/v1/connections/${row.id}`,

    async getSession(id: string) {
      const row = await store.db.selectFrom('connect_sessions').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw notFound(`connect session ${id}`);
      if (row.status === 'pending' && row.expires_at <= clock.now()) return { ...row, status: 'expired' as const };
      return row;
    },

    /**
     * GET /oauth/callback/{provider} (or /oauth/callback), with the request's `Cookie` header and
     * `arrivedAt`, the callback path the response came to (the HTTP route always passes it; an
     * in-process caller holding the IdP's redirect passes its path, or nothing to skip that check).
     * Never throws for the IdP's or the user's errors: they end the session as failed, as does a
     * response at another provider's path or with another issuer's `iss` (mix-up). Refused without
     * consuming the state: a callback from a browser that did not open the session, and values
     * that fail their type.
     */
    async handleCallback(query: URLSearchParams, cookieHeader?: string, arrivedAt?: string): Promise<CallbackOutcome> {
      const state = query.get('state');
      if (!state) throw invalidRequest('query.state', 'missing');
      const stateHash = hashSecret(state);
      const found = await store.db.selectFrom('connect_sessions').selectAll().where('state_hash', '=', stateHash).where('status', '=', 'pending').executeTakeFirst();
      if (!found) throw invalidRequest('query.state', 'unknown, already used, or from another session');
      const browser = readCookie(cookieHeader, cookieName(found.id));
      if (!found.browser_hash || !browser || !safeEqual(hashSecret(browser), found.browser_hash)) {
        throw new WarrantError('invalid_request', 'this sign-in was started in another browser (or its cookie is gone); start again from your link in the browser you use', { field: 'cookie' });
      }
      // Consume the state exactly once: the update succeeds for one caller only.
      const claimed = await store.db
        .updateTable('connect_sessions')
        .set({ state_hash: `used:${randomBytes(9).toString('base64url')}` })
        .where('state_hash', '=', stateHash)
        .where('status', '=', 'pending')
        .where('browser_hash', '=', found.browser_hash)
        .returningAll()
        .executeTakeFirst();
      if (!claimed) throw invalidRequest('query.state', 'unknown, already used, or from another session');
      const sent = await store.vault.getAll('connect_session', claimed.id);
      const redirectUri = sent.redirect_uri ?? `${deps.publicUrl}${CALLBACK_PATH}`;
      // RFC 9700 §4.4.2.2: the response must come back to the redirect URI this session's request
      // named, its provider's own; anywhere else, the request was sent to another authorization server.
      if (arrivedAt !== undefined && `${deps.publicUrl}${arrivedAt}` !== redirectUri) {
        logger.warn({ session: claimed.id, provider: claimed.provider, arrivedAt }, "authorization response refused: it came to another provider's callback (possible mix-up)");
        return failed(claimed, 'callback_mismatch');
      }
      if (claimed.expires_at <= clock.now()) return failed(claimed, 'expired');
      const error = query.get('error');
      if (error) return failed(claimed, /^[\w.-]{1,64}$/.test(error) ? error : 'authorization_error');
      const provider = connections.providerFor(claimed.provider);
      let target: ConnectionRow | undefined;
      let params: Record<string, string>;
      try {
        target = await reconnectTarget(claimed);
        // Checked before the code is exchanged: a bad value never reaches a URL (QuickBooks realmId).
        params = { ...parseJson<Record<string, string>>(claimed.params, {}), ...returnedParams(provider, 'callback', Object.fromEntries(query)) };
      } catch (err) {
        await finish(claimed, { status: 'failed', error: (err as WarrantError).code ?? 'invalid_request' });
        throw err;
      }
      const scopes = parseJson<string[]>(claimed.scopes, []);
      const client = deps.clients(provider, claimed.environment, params);
      let tokens;
      try {
        tokens = await client.exchangeCode(query, { redirectUri, codeVerifier: sent.code_verifier, expectedState: state });
      } catch (err) {
        const e = classify(err, 'code exchange');
        const mixUp = e.error === 'issuer_mismatch' || e.error === 'issuer_missing';
        logger.warn({ session: claimed.id, provider: provider.id, error: e.error }, mixUp ? 'authorization response refused by the RFC 9207 iss check (possible mix-up)' : 'code exchange failed');
        return failed(claimed, e.error);
      }
      try {
        Object.assign(params, returnedParams(provider, 'token_response', tokens.extra));
      } catch (err) {
        logger.warn({ session: claimed.id, provider: provider.id, field: (err as WarrantError).members?.field }, 'token response refused: a connection param is not what its type says');
        await finish(claimed, { status: 'failed', error: 'invalid_request' });
        throw err;
      }
      if (provider.tenant_discovery) {
        try {
          const tenant = await discoverTenant({ provider, accessToken: tokens.access_token, given: params[provider.tenant_discovery.param], timeoutMs: idpTimeoutMs });
          params[tenant.param] = tenant.value;
          logger.info({ session: claimed.id, provider: provider.id, param: tenant.param, found: tenant.found }, `tenant discovery: the grant reaches ${tenant.found} tenant(s)`);
        } catch (err) {
          const error = isWarrantError(err) ? String(err.members.error ?? err.code) : 'tenant_discovery_failed';
          logger.warn({ session: claimed.id, provider: provider.id, error, detail: isWarrantError(err) ? err.detail : undefined }, 'connect failed at tenant discovery: nothing stored');
          await finish(claimed, { status: 'failed', error });
          throw err;
        }
      }
      const subject = await accountOf({ client, tokens, timeoutMs: idpTimeoutMs });
      const grant: Grant = { provider, client, tokens, subject, params, scopes };
      if (target) return settleReconnect(claimed, target, grant);
      const connection = await connections.saveGrant({
        provider,
        environment: claimed.environment,
        owner: claimed.owner,
        tokens,
        requestedScopes: scopes,
        params,
        subject,
        tags: tagsOf(claimed),
        actor: `owner:${claimed.owner}`,
        event: 'connection.created',
      });
      return completed(claimed, connection, scopes);
    },
  };
}

export type ConnectFlow = ReturnType<typeof createConnectFlow>;
