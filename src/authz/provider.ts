import Provider, { errors, interactionPolicy, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Store } from '../store/index.ts';
import { createStoreAdapter, touchClient } from './adapter.ts';
import type { ClientAgents } from './agents.ts';
import { documentFeature, fetchBodyLimits, outboundFetch, rememberFailedDocuments } from './cimd.ts';
import type { AuthzKeys } from './keys.ts';
import { authzDefaults, authzPaths } from './options.ts';
import { deviceConfirmSource, deviceInputSource, deviceSuccessSource, renderErrorPage } from './pages.ts';
import { devicePolling } from './device.ts';
import { OWNER_METADATA } from './headless.ts';
import type { Resources } from './resources.ts';
import { checkRegistration } from './registration.ts';
import { registerTokenExchange, type TokenExchangeDeps } from './token-exchange.ts';
import { registerIdJag, type IdJagDeps } from './id-jag.ts';
import { registerJwtIntrospection } from './introspection.ts';
import type { VerifyAccessToken } from './verify.ts';

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
  tokenExchange?: Pick<TokenExchangeDeps, 'authenticateAgent' | 'verifyAccessToken' | 'audit'>;
  /** Enterprise-managed authorization (SEP-990, id-jag.ts): the IdPs trusted; none, no grant. */
  idJag?: Pick<IdJagDeps, 'idps' | 'audit' | 'jwksTimeoutMs'>;
  /** Every fetch the server makes (client metadata documents, a client's jwks_uri): Warrant's SSRF-guarded fetch. */
  guardedFetch: typeof fetch;
  /** RFC 7662 for Warrant's JWT access tokens at the introspection endpoint (introspection.ts); unset, oidc-provider refuses JWTs. */
  verifyAccessToken?: VerifyAccessToken;
}

/** The owner an admin bound a headless client to, if it is one. */
export const ownerOf = (client: unknown): string | undefined => {
  const v = (client as Record<string, unknown> | undefined)?.[OWNER_METADATA];
  return typeof v === 'string' ? v : undefined;
};

export function createAuthzProvider(deps: AuthzProviderDeps): Provider {
  const { resources, clientAgents, store } = deps;
  const ttl = { ...authzDefaults.ttlSeconds, ...deps.ttl };

  // Consent is asked once per client and owner: consenting is what makes the client an agent of the
  // owner, so a client without an active agent of this owner always asks; one with an agent asks only
  // for scopes or resources the owner has not allowed it yet (loadExistingGrant below).
  const policy = interactionPolicy.base();
  const consentChecks = policy.get('consent')!.checks;
  // RFC 8252 §8.6: a native client's identity cannot be assured (its client_id and loopback redirect
  // can be claimed by another app), so none of its authorizations completes without the owner at the
  // browser: oidc-provider asks consent every time. Signing in within this very request is that
  // interaction too (the sign-in page names the client), so an owner who allowed the client before
  // and signs in from a new browser sees no consent page; with a live session, the consent page shows.
  const nativeAt = consentChecks.findIndex((c) => c.reason === 'native_client_prompt');
  consentChecks.remove('native_client_prompt');
  consentChecks.add(
    new interactionPolicy.Check('native_client_prompt', 'native clients require End-User interaction', 'interaction_required', (ctx) => {
      const { oidc } = ctx;
      if (oidc.client?.applicationType !== 'native' || oidc.params?.response_type === 'none' || oidc.result?.consent || oidc.result?.login) {
        return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      }
      return interactionPolicy.Check.REQUEST_PROMPT;
    }),
    nativeAt === -1 ? consentChecks.length : nativeAt,
  );
  consentChecks.add(
    new interactionPolicy.Check('warrant_agent_missing', 'the owner has not consented to this client', async (ctx) => {
      const accountId = ctx.oidc.session?.accountId;
      const clientId = ctx.oidc.client?.clientId;
      if (!accountId || !clientId) return interactionPolicy.Check.REQUEST_PROMPT;
      return (await clientAgents.activeAgentOf(clientId, accountId)) ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT;
    }),
  );

  /**
   * The grant an authorization starts from. oidc-provider keeps one per browser session (the
   * default: the session's own, or the one consent just saved); Warrant adds to it, or to a new one
   * when the session has none, what this request asks AND the owner allowed this client before, in
   * any session (agents.ts `consentOf`, only while the client's agent of the owner is active), never
   * more: what is asked beyond it stays missing from the grant, so the consent prompt shows for it.
   */
  async function loadGrant(ctx: KoaContextWithOIDC) {
    const { oidc } = ctx;
    const clientId = oidc.client?.clientId;
    const accountId = oidc.account?.accountId ?? oidc.session?.accountId;
    if (!clientId || !accountId) return undefined;
    const justConsented = oidc.result?.consent?.grantId;
    if (typeof justConsented === 'string') return oidc.provider.Grant.find(justConsented);
    const own = oidc.session?.grantIdFor(clientId);
    const existing = own ? await oidc.provider.Grant.find(own) : undefined;
    const consent = await clientAgents.consentOf(clientId, accountId);
    if (!consent) return existing;
    const grant = existing ?? new oidc.provider.Grant({ accountId, clientId });
    let added = false;
    const granted = new Set(grant.getOIDCScope().split(' '));
    const oidcScopes = [...oidc.requestParamOIDCScopes].filter((s) => consent.scopes.includes(s) && !granted.has(s));
    if (oidcScopes.length) {
      grant.addOIDCScope(oidcScopes.join(' '));
      added = true;
    }
    for (const [indicator, rs] of Object.entries(oidc.resourceServers ?? {})) {
      const allowed = consent.resources[indicator];
      if (!allowed) continue; // RFC 8707: consent to one resource is no consent to another
      const has = new Set(grant.getResourceScope(indicator).split(' '));
      const scopes = [...oidc.requestParamScopes].filter((s) => rs.scopes.has(s) && allowed.includes(s) && !has.has(s));
      if (scopes.length) {
        grant.addResourceScope(indicator, scopes.join(' '));
        added = true;
      }
    }
    if (!added) return existing;
    await grant.save();
    return grant;
  }

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
      // A client_id that is an https URL names its metadata document (draft-02; MCP's first choice): cimd.ts.
      clientIdMetadataDocument: documentFeature(),
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
        // RFC 7662 §4: a client learns only about its own tokens (refresh tokens here; the JWT access
        // tokens answer the same way in introspection.ts): no resource server outside Warrant holds one.
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
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
    // oidc-provider keeps a grant per browser session; Warrant remembers consent per client and owner.
    loadExistingGrant: async (ctx) => loadGrant(ctx),
    clientBasedCORS: () => false,
    // Client ID Metadata Documents and jwks_uri: through Warrant's SSRF guard, capped in time and size (cimd.ts).
    fetch: outboundFetch({ fetch: deps.guardedFetch, timeoutMs: authzDefaults.outboundTimeoutMs, logger: deps.logger }),
    fetchResponseBodyLimits: fetchBodyLimits(),
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
  // Enterprise-managed authorization (SEP-990): an ID-JAG from a configured IdP, with no consent screen.
  if (deps.idJag?.idps.length) {
    registerIdJag(provider, { ...deps.idJag, issuer: deps.issuer, keys: deps.keys, resources, clientAgents, store, logger: deps.logger, now: deps.now, ttlSeconds: ttl.accessToken });
  }

  // RFC 7662 for the JWT access tokens: answered once oidc-provider authenticated the caller.
  if (deps.verifyAccessToken) registerJwtIntrospection(provider, { verifyAccessToken: deps.verifyAccessToken, logger: deps.logger });

  // A headless client lives only while its agent does (revoked agent, offboarded owner: unknown client).
  // A client_id URL whose metadata document failed is not fetched again at once (cimd.ts).
  const findClient = rememberFailedDocuments(provider.Client.find.bind(provider.Client), deps.now);
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
