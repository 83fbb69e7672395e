import { createHmac, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { hashSecret, safeEqual } from '../crypto/index.ts';
import { WarrantError, invalidRequest, notFound } from '../errors/index.ts';
import { calculatePKCECodeChallenge, classify, generateRandomCodeVerifier, generateRandomState, type TokenSet } from '../oauth/index.ts';
import type { ConnectionRow, ConnectSessionRow, Store } from '../store/index.ts';
import type { ClientResolver } from './clients.ts';
import { newId, type ConnectionService } from './connections.ts';
import { parseJson, type Clock } from './service.ts';

export interface ConnectSessionInput {
  provider: string;
  environment?: string;
  owner: string;
  scopes: string[];
  redirect_to?: string;
  /** Connection params known before consent (e.g. a tenant's `shop` or `cloud_id`). */
  params?: Record<string, string>;
}

export interface CallbackOutcome {
  session: ConnectSessionRow;
  connection?: ConnectionRow;
  missingScopes: string[];
}

const RECONNECT_LINK_DAYS = 7;

/**
 * The authorization code flow (RFC 6749 §4.1) with PKCE S256 (RFC 7636): a connect session
 * holds a single-use `state` (stored hashed) and the sealed code verifier; the callback
 * consumes the state once, exchanges the code, and creates (or re-connects) the connection.
 */
export function createConnectFlow(deps: {
  store: Store;
  connections: ConnectionService;
  clients: ClientResolver;
  clock: Clock;
  logger: Logger;
  publicUrl: string;
  sessionTtlSeconds: number;
}) {
  const { store, clock, connections } = deps;
  const redirectUri = `${deps.publicUrl}/oauth/callback`;

  async function createSession(input: ConnectSessionInput, reconnect?: ConnectionRow) {
    const provider = connections.providerFor(input.provider);
    if (provider.auth !== 'oauth2') throw invalidRequest('provider', `${provider.id} does not use the authorization code flow (${provider.auth}); import the credential with POST /v1/connections`);
    const environment = connections.environmentFor(provider, input.environment);
    if (input.redirect_to && !/^https?:\/\//i.test(input.redirect_to)) throw invalidRequest('redirect_to', 'must be an http(s) URL');
    const scopes = [...new Set([...(provider.default_scopes ?? []), ...input.scopes])];
    const params = input.params ?? {};
    const client = deps.clients(provider, environment, params);
    const state = generateRandomState();
    const verifier = provider.pkce ? generateRandomCodeVerifier() : undefined;
    const now = clock.now();
    const id = newId('cs');
    const expiresAt = now + deps.sessionTtlSeconds * 1000;
    const authorizeUrl = client.authorizationUrl({
      redirectUri,
      scopes,
      state,
      codeChallenge: verifier ? await calculatePKCECodeChallenge(verifier) : undefined,
    });
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
          redirect_to: input.redirect_to ?? null,
          state_hash: hashSecret(state),
          status: 'pending',
          connection_id: reconnect?.id ?? null,
          error: null,
          expires_at: expiresAt,
          created_at: now,
          completed_at: null,
        })
        .execute();
      if (verifier) await store.vault.put({ scope: 'connect_session', ref: id, field: 'code_verifier' }, verifier, trx);
    });
    return { id, authorize_url: authorizeUrl, expires_at: new Date(expiresAt).toISOString() };
  }

  async function finish(session: ConnectSessionRow, patch: { status: 'completed' | 'failed'; error?: string; connection_id?: string }) {
    await store.db
      .updateTable('connect_sessions')
      .set({ status: patch.status, error: patch.error ?? null, connection_id: patch.connection_id ?? session.connection_id, completed_at: clock.now() })
      .where('id', '=', session.id)
      .execute();
    await store.vault.delete({ scope: 'connect_session', ref: session.id });
    return (await store.db.selectFrom('connect_sessions').selectAll().where('id', '=', session.id).executeTakeFirst())!;
  }

  async function reconnectKey(): Promise<Buffer> {
    const ref = { scope: 'warrant', ref: 'reconnect', field: 'hmac_key' };
    let key = await store.vault.get(ref);
    if (!key) {
      await store.vault.put(ref, randomBytes(32).toString('base64'));
      key = (await store.vault.get(ref))!;
    }
    return Buffer.from(key, 'base64');
  }

  /** Whose grant this is, when the IdP says: `sub` in the token response, else RFC 7662 introspection. */
  async function subjectOf(client: ReturnType<ClientResolver>, tokens: TokenSet): Promise<string | undefined> {
    if (typeof tokens.extra.sub === 'string' && tokens.extra.sub) return tokens.extra.sub;
    if (!client.endpoints.introspection_url) return undefined;
    try {
      const info = await client.introspect(tokens.access_token, 'access_token');
      return info.active && info.sub ? info.sub : undefined;
    } catch {
      return undefined;
    }
  }

  const sign = async (connectionId: string, exp: number) =>
    createHmac('sha256', await reconnectKey()).update(`reconnect\n${connectionId}\n${exp}`).digest('base64url');

  return {
    createSession: (input: ConnectSessionInput) => createSession(input),

    async getSession(id: string) {
      const row = await store.db.selectFrom('connect_sessions').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw notFound(`connect session ${id}`);
      if (row.status === 'pending' && row.expires_at <= clock.now()) return { ...row, status: 'expired' as const };
      return row;
    },

    /**
     * A link the owner follows to grant access again after `reauth_required`: signed (HMAC) and
     * valid for 7 days, so it can travel in an alert. Following it starts a fresh connect session.
     */
    async reconnectUrl(connection: ConnectionRow): Promise<string> {
      const exp = Math.floor(clock.now() / 1000) + RECONNECT_LINK_DAYS * 86_400;
      return `${deps.publicUrl}/oauth/reconnect/${connection.id}?exp=${exp}&sig=${await sign(connection.id, exp)}`;
    },

    async startReconnect(connectionId: string, exp: number, sig: string): Promise<string> {
      if (!Number.isInteger(exp) || exp * 1000 < clock.now() || !safeEqual(sig, await sign(connectionId, exp))) {
        throw new WarrantError('invalid_request', 'this re-connect link is invalid or has expired; ask for a new one', { field: 'sig' });
      }
      const row = await store.connections.get(connectionId);
      if (!row) throw notFound(`connection ${connectionId}`);
      const requested = parseJson<string[]>(row.requested_scopes, []);
      const session = await createSession(
        { provider: row.provider, environment: row.environment, owner: row.owner, scopes: requested, params: parseJson(row.params, {}) },
        row,
      );
      return session.authorize_url;
    },

    /** GET /oauth/callback. Never throws for the IdP's or the user's errors: they end the session as failed. */
    async handleCallback(query: URLSearchParams): Promise<CallbackOutcome> {
      const state = query.get('state');
      if (!state) throw invalidRequest('query.state', 'missing');
      const stateHash = hashSecret(state);
      // Consume the state exactly once: the update succeeds for one caller only.
      const claimed = await store.db
        .updateTable('connect_sessions')
        .set({ state_hash: `used:${randomBytes(9).toString('base64url')}` })
        .where('state_hash', '=', stateHash)
        .where('status', '=', 'pending')
        .returningAll()
        .executeTakeFirst();
      if (!claimed) throw invalidRequest('query.state', 'unknown, already used, or from another session');
      if (claimed.expires_at <= clock.now()) {
        return { session: await finish(claimed, { status: 'failed', error: 'expired' }), missingScopes: [] };
      }
      const error = query.get('error');
      if (error) {
        return { session: await finish(claimed, { status: 'failed', error: /^[\w.-]{1,64}$/.test(error) ? error : 'authorization_error' }), missingScopes: [] };
      }
      const provider = connections.providerFor(claimed.provider);
      const scopes = parseJson<string[]>(claimed.scopes, []);
      const params = parseJson<Record<string, string>>(claimed.params, {});
      const client = deps.clients(provider, claimed.environment, params);
      const verifier = await store.vault.get({ scope: 'connect_session', ref: claimed.id, field: 'code_verifier' });
      let tokens;
      try {
        tokens = await client.exchangeCode(query, { redirectUri, codeVerifier: verifier, expectedState: state });
      } catch (err) {
        const e = classify(err, 'code exchange');
        deps.logger.warn({ session: claimed.id, provider: provider.id, error: e.error }, 'code exchange failed');
        return { session: await finish(claimed, { status: 'failed', error: e.error }), missingScopes: [] };
      }
      const connectionParams = { ...params };
      for (const [name, def] of Object.entries(provider.connection_params ?? {})) {
        const source = def.from === 'token_response' ? tokens.extra : def.from === 'callback' ? Object.fromEntries(query) : {};
        const value = source[def.field ?? name];
        if (typeof value === 'string' && value) connectionParams[name] = value;
      }
      const existing = claimed.connection_id ? await store.connections.get(claimed.connection_id) : undefined;
      const subject = await subjectOf(client, tokens);
      if (existing?.subject && subject && subject !== existing.subject) {
        // A re-connect link is a capability that can travel; consenting with another account must
        // not swap whose data the connection's agents act on. The new grant is thrown away.
        deps.logger.warn({ session: claimed.id, connection: existing.id, provider: provider.id }, 're-connect refused: a different account consented');
        await client.revoke(tokens.refresh_token ?? tokens.access_token, tokens.refresh_token ? 'refresh_token' : 'access_token').catch(() => {});
        return { session: await finish(claimed, { status: 'failed', error: 'account_mismatch' }), missingScopes: [] };
      }
      const connection = await connections.saveGrant({
        existing,
        provider,
        environment: claimed.environment,
        owner: claimed.owner,
        tokens,
        requestedScopes: scopes,
        params: connectionParams,
        subject,
        actor: `owner:${claimed.owner}`,
        event: existing ? 'connection.reconnected' : 'connection.created',
      });
      const granted = parseJson<string[]>(connection.scopes, []);
      return {
        session: await finish(claimed, { status: 'completed', connection_id: connection.id }),
        connection,
        missingScopes: scopes.filter((s) => !granted.includes(s)),
      };
    },
  };
}

export type ConnectFlow = ReturnType<typeof createConnectFlow>;
