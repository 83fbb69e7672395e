import Provider, { errors, interactionPolicy, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Store } from '../store/index.ts';
import { createStoreAdapter, touchClient } from './adapter.ts';
import type { ClientAgents } from './agents.ts';
import type { AuthzKeys } from './keys.ts';
import { authzDefaults, authzPaths } from './options.ts';
import { deviceConfirmSource, deviceInputSource, deviceSuccessSource, renderErrorPage } from './pages.ts';
import { devicePolling } from './device.ts';
import { OWNER_METADATA } from './headless.ts';
import type { Resources } from './resources.ts';
import { checkRegistration } from './registration.ts';
import { registerTokenExchange, type TokenExchangeDeps } from './token-exchange.ts';

// Warrant's own OAuth 2.1 authorization server: oidc-provider, configured once, here.

export interface AuthzProviderDeps {
  /** WARRANT_PUBLIC_URL's origin: the `iss` of every token and authorization response. */
  issuer: string;
  store: Pick<Store, 'db' | 'vault' | 'transaction' | 'owners'>;
  keys: AuthzKeys;
  resources: Resources;
  clientAgents: ClientAgents;
  logger: Logger;
  now: () => number;
  ttl?: Partial<typeof authzDefaults.ttlSeconds>;
  /** RFC 8693 token exchange (token-exchange.ts): how subject tokens are checked. */
  tokenExchange?: Pick<TokenExchangeDeps, 'authenticateAgent' | 'verifyAccessToken'>;
}

/** The owner an admin bound a headless client to, if it is one. */
export const ownerOf = (client: unknown): string | undefined => {
  const v = (client as Record<string, unknown> | undefined)?.[OWNER_METADATA];
  return typeof v === 'string' ? v : undefined;
};

export function createAuthzProvider(deps: AuthzProviderDeps): Provider {
  const { resources, clientAgents, store } = deps;
  const ttl = { ...authzDefaults.ttlSeconds, ...deps.ttl };

  // Consent is asked once per client and owner, whatever the scopes: consenting is what makes the
  // client an agent of the owner, so a client without an active agent of this owner always asks.
  const policy = interactionPolicy.base();
  policy.get('consent')!.checks.add(
    new interactionPolicy.Check('warrant_agent_missing', 'the owner has not consented to this client', async (ctx) => {
      const accountId = ctx.oidc.session?.accountId;
      const clientId = ctx.oidc.client?.clientId;
      if (!accountId || !clientId) return interactionPolicy.Check.REQUEST_PROMPT;
      return (await clientAgents.activeAgentOf(clientId, accountId)) ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT;
    }),
  );

  const configuration: Configuration = {
    adapter: createStoreAdapter({ store, now: deps.now, clientUnusedMs: authzDefaults.clientUnusedMs }),
    jwks: deps.keys.jwks as Configuration['jwks'],
    cookies: { keys: deps.keys.cookieKeys },
    routes: authzPaths.routes,
    scopes: ['openid', 'offline_access', ...authzDefaults.scopes],
    responseTypes: ['code'],
    // OAuth 2.1 §4.1.1 / RFC 9700 §2.1.1: PKCE for every client; oidc-provider 9 knows S256 only.
    pkce: { required: () => true },
    // RFC 9700 §4.1.3: exact redirect URI matching, always named in the request.
    allowOmittingSingleRegisteredRedirectUri: false,
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    clientDefaults: { grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' },
    // Rotation on every use; the grace (a rotated token works until its successor is used) is the adapter's.
    rotateRefreshToken: true,
    // Every client that registered the refresh_token grant gets one, with or without offline_access.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: ttl.accessToken,
      AuthorizationCode: ttl.authorizationCode,
      RefreshToken: ttl.refreshToken,
      Grant: ttl.grant,
      Session: ttl.session,
      Interaction: ttl.interaction,
      IdToken: ttl.accessToken,
      DeviceCode: ttl.deviceCode,
      ClientCredentials: ttl.accessToken,
    },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      // Headless agents (SEP-1046): private_key_jwt clients registered by an admin (headless.ts).
      clientCredentials: { enabled: true },
      // RFC 8628: agents on machines with no browser; the owner approves on any browser (device.ts).
      deviceFlow: {
        enabled: true,
        charset: 'base-20',
        mask: '****-****',
        userCodeInputSource: async (ctx, form, out, err) => deviceInputSource(ctx, form, out, err as never),
        userCodeConfirmSource: async (ctx, form, client, info, code) => deviceConfirmSource(ctx, form, client, info, code),
        successSource: async (ctx) => deviceSuccessSource(ctx),
      },
      registration: {
        enabled: true,
        // RFC 7591 §3.2.2 refusals beyond oidc-provider's own (registration.ts); runs on the parsed body.
        idFactory: (ctx) => checkRegistration(ctx as KoaContextWithOIDC),
        issueRegistrationAccessToken: false,
      },
      revocation: {
        enabled: true,
        // RFC 7009 §2.1: a client revokes only its own tokens.
        allowedPolicy: async (_ctx, client, token) => {
          if (token.clientId === client.clientId) return true;
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        },
      },
      introspection: {
        enabled: true,
        // RFC 7662 §2.1: a public client may introspect only its own tokens.
        allowedPolicy: async (ctx, client, token) => client.clientAuthMethod !== 'none' || token.clientId === ctx.oidc.client?.clientId,
      },
      resourceIndicators: {
        enabled: true,
        // RFC 8707: every authorization names its resource (MCP clients always send one); a token
        // request with several granted resources must pick one: a token serves exactly one audience.
        defaultResource: async (ctx, _client, oneOf) => {
          if (oneOf?.length === 1) return oneOf[0]!;
          if (oneOf && oneOf.length > 1) return oneOf;
          if (ctx.oidc.route === 'authorization' || ctx.oidc.route === 'pushed_authorization_request' || ctx.oidc.route === 'device_authorization') {
            throw new errors.InvalidTarget('a resource indicator (RFC 8707) is required');
          }
          return undefined as unknown as string;
        },
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          const info = resources.resolve(indicator);
          if (!info) throw new errors.InvalidTarget('Warrant issues no token for this resource');
          // RFC 9068: a JWT access token whose `aud` is this one resource.
          return { scope: info.scopes.join(' '), audience: info.resource, accessTokenFormat: 'jwt', accessTokenTTL: ttl.accessToken, jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
    // The owner of a headless client, set by the admin API only: a client cannot name its own owner.
    extraClientMetadata: {
      properties: [OWNER_METADATA],
      validator: (ctx, key, value) => {
        if (key === OWNER_METADATA && value !== undefined && (ctx as KoaContextWithOIDC | undefined)?.oidc?.route === 'registration') {
          throw new errors.InvalidClientMetadata(`${OWNER_METADATA} is set by Warrant's admin API, not by registration`);
        }
      },
    },
    extraTokenClaims: async (ctx, token) => {
      const t = token as { accountId?: string; clientId?: string; kind?: string };
      if (!t.accountId && t.clientId && t.kind === 'ClientCredentials') {
        const owner = ownerOf(ctx.oidc.client);
        const agent = owner ? await clientAgents.activeAgentOf(t.clientId, owner) : undefined;
        return agent ? { agent_id: agent } : undefined;
      }
      if (!t.accountId || !t.clientId) return undefined;
      const agent = await clientAgents.activeAgentOf(t.clientId, t.accountId);
      return agent ? { agent_id: agent } : undefined;
    },
    // The user is an owner of Warrant; an offboarded owner is nobody.
    findAccount: async (_ctx, sub) => {
      const owner = await store.owners.get(sub);
      if (!owner || owner.status !== 'active') return undefined;
      return { accountId: sub, claims: async () => ({ sub }) };
    },
    interactions: { policy, url: async (_ctx, interaction) => `${authzPaths.interaction}/${interaction.uid}` },
    clientBasedCORS: () => false,
    renderError: async (ctx, out) => renderErrorPage(ctx, out),
  };

  const provider = new Provider(deps.issuer, configuration);
  // Behind a TLS-terminating proxy the request looks like plain HTTP; the issuer says what it is.
  provider.proxy = false;

  // Exact redirect URIs (RFC 9700 §4.1.3, the MCP authorization spec): oidc-provider would let a
  // native client's loopback URI take any port (RFC 8252 §7.3); Warrant compares the whole string.
  provider.Client.prototype.redirectUriAllowed = function (this: InstanceType<typeof provider.Client>, uri: string) {
    return (this.redirectUris ?? []).includes(uri);
  };

  // A request that names a resource and no scope (MCP clients often send none) asks for the
  // resource's own scopes: oidc-provider refuses an authorization that grants no scope at all.
  const authorizationPath = authzPaths.routes.authorization;
  provider.use(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === authorizationPath && ctx.query.scope === undefined && ctx.query.resource !== undefined) {
      const scopes = new Set<string>();
      for (const r of ([] as unknown[]).concat(ctx.query.resource)) {
        if (typeof r === 'string') for (const s of resources.resolve(r)?.scopes ?? []) scopes.add(s);
      }
      if (scopes.size) ctx.query = { ...ctx.query, scope: [...scopes].join(' ') };
    }
    await next();
  });

  devicePolling(provider, { store, now: deps.now, intervalSeconds: authzDefaults.devicePollIntervalSeconds, ttlSeconds: ttl.deviceCode });

  // Delegation (RFC 8693): an agent's credential for a narrower token, with `act` recording the chain.
  if (deps.tokenExchange) {
    registerTokenExchange(provider, { ...deps.tokenExchange, issuer: deps.issuer, keys: deps.keys, resources, clientAgents, store, logger: deps.logger, now: deps.now, ttlSeconds: ttl.accessToken });
  }

  // A headless client lives only while its agent does (revoked agent, offboarded owner: unknown client).
  const findClient = provider.Client.find.bind(provider.Client);
  provider.Client.find = (async (id: string) => {
    const client = await findClient(id);
    const owner = ownerOf(client);
    if (!client || !owner) return client;
    return (await clientAgents.activeAgentOf(client.clientId, owner)) ? client : undefined;
  }) as typeof provider.Client.find;

  // A grant lives only while the agent it made does: a revoked agent or an offboarded owner makes
  // it unknown, so the token endpoint answers invalid_grant and introspection `active: false`.
  const findGrant = provider.Grant.find.bind(provider.Grant);
  provider.Grant.find = (async (id: string, opts?: { ignoreExpiration?: boolean }) => {
    const grant = await findGrant(id, opts);
    const g = grant as { clientId?: string; accountId?: string } | undefined;
    if (!g?.clientId || !g.accountId) return grant;
    return (await clientAgents.activeAgentOf(g.clientId, g.accountId)) ? grant : undefined;
  }) as typeof provider.Grant.find;

  // A client is used when the token endpoint answers it: its 90 days start again (adapter.ts).
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const clientId = ctx.oidc.client?.clientId;
    if (!clientId) return;
    touchClient(store, clientId, deps.now(), authzDefaults.clientUnusedMs).catch((err: Error) =>
      deps.logger.warn({ err: { message: err.message }, client: clientId }, 'could not record the client use'),
    );
  });
  provider.on('server_error', (_ctx: unknown, err: Error) => deps.logger.error({ err: { message: err.message, name: err.name } }, 'authz server error'));
  provider.on('grant.revoked', (_ctx: unknown, grantId: string) => deps.logger.info({ grant: grantId }, 'authz grant revoked'));
  return provider;
}
