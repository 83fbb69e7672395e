import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import Provider, { errors, type ClientMetadata, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { createMemoryAdapter, type AdapterInspector } from './adapter.ts';
import { escapeHtml } from './http.ts';
import { installJwtBearer, type ServiceAccounts } from './jwt-bearer.ts';
import { isLoopbackUrl, loopbackPlaceholderRedirect, sandboxDefaults, type ResolvedOptions, type SandboxClient } from './options.ts';
import { countTokenRequest, type SandboxStats } from './stats.ts';

// The authorization server: oidc-provider configured like a production IdP (PKCE S256 required,
// opaque tokens so revocation is immediate, refresh-token rotation with reuse detection).

export interface IdpDeps {
  issuer: string;
  apiBaseUrl: string;
  options: ResolvedOptions;
  /** Read on every issuance, so a change applies to tokens issued afterwards. */
  lifetimes: { accessTokenTtl: number };
  stats: SandboxStats;
}

let signingKey: Promise<JsonWebKey> | undefined;
/** One RSA key per process signs ID tokens of every sandbox: generating one per start costs ~100 ms. */
function sandboxSigningKey(): Promise<JsonWebKey> {
  signingKey ??= promisify(generateKeyPair)('rsa', { modulusLength: 2048 }).then(({ privateKey }) => ({
    ...privateKey.export({ format: 'jwk' }),
    use: 'sig',
    alg: 'RS256',
  }));
  return signingKey;
}

function clientMetadata(c: SandboxClient): ClientMetadata {
  const grantTypes = c.grant_types ?? ['authorization_code', 'refresh_token'];
  const code = grantTypes.includes('authorization_code');
  const metadata: ClientMetadata = {
    client_id: c.client_id,
    grant_types: grantTypes,
    response_types: code ? ['code'] : [],
    redirect_uris: code ? (c.redirect_uris ?? [loopbackPlaceholderRedirect]) : [],
    token_endpoint_auth_method: (c.token_endpoint_auth_method ?? (c.client_secret ? 'client_secret_basic' : 'none')) as ClientMetadata['token_endpoint_auth_method'],
  };
  if (c.client_secret !== undefined) metadata.client_secret = c.client_secret;
  if (c.scope !== undefined) metadata.scope = c.scope;
  return metadata;
}

/** The API's own scopes: everything but the OpenID ones. */
export function resourceScopes(options: ResolvedOptions): string[] {
  return options.scopes.filter((s) => s !== 'openid' && s !== 'offline_access');
}

const sameResource = (a: string, b: string) => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');

export interface Idp {
  provider: Provider;
  /** RFC 7523 service accounts (the JWT bearer grant). */
  serviceAccounts: ServiceAccounts;
  /** The provider's storage, for the controls that act on every grant or token (bulk.ts). */
  inspector: AdapterInspector;
}

export async function createIdp(deps: IdpDeps): Promise<Idp> {
  const { options, lifetimes, stats, apiBaseUrl } = deps;
  const { log } = options;
  const apiScopeList = resourceScopes(options).join(' ');
  const adapter = createMemoryAdapter();

  const configuration: Configuration = {
    adapter,
    clients: options.clients.map(clientMetadata),
    jwks: { keys: [(await sandboxSigningKey()) as never] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['openid', ...options.scopes],
    responseTypes: ['code'],
    // RFC 9700 §2.1.1: PKCE for every client; oidc-provider 9 accepts S256 only.
    pkce: { required: () => true },
    allowOmittingSingleRegisteredRedirectUri: false,
    rotateRefreshToken: options.rotateRefreshTokens,
    // Refresh tokens go to clients allowed the refresh_token grant that asked for offline_access;
    // no prompt=consent needed (the interaction below always asks for, and gets, consent).
    issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    ttl: {
      AccessToken: () => lifetimes.accessTokenTtl,
      ClientCredentials: () => lifetimes.accessTokenTtl,
      IdToken: () => lifetimes.accessTokenTtl,
      RefreshToken: () => options.refreshTokenTtl,
      // The grant bounds the refresh-token chain: its absolute lifetime.
      Grant: () => options.refreshTokenTtl,
      Session: () => options.refreshTokenTtl,
      Interaction: () => sandboxDefaults.interactionTtlSeconds,
      AuthorizationCode: () => sandboxDefaults.authorizationCodeTtlSeconds,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      dPoP: { enabled: false },
      rpInitiatedLogout: { enabled: false },
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
        allowedPolicy: async (ctx, client, token) =>
          client.metadata().token_endpoint_auth_method !== 'none' || token.clientId === ctx.oidc.client?.clientId,
      },
      resourceIndicators: {
        enabled: true,
        // No `resource` parameter: an opaque token the API accepts all the same (RFC 8707 is optional).
        defaultResource: async () => undefined,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          const audience = [apiBaseUrl, ...options.resources].find((r) => sameResource(indicator, r));
          if (!audience) throw new errors.InvalidTarget();
          return { scope: apiScopeList, audience, accessTokenFormat: 'opaque', accessTokenTTL: lifetimes.accessTokenTtl };
        },
      },
    },
    // `sandbox-user`, and any other account a `login_hint` named: sandbox users exist on demand.
    findAccount: async (_ctx, sub) =>
      /^[a-z0-9-]{1,32}$/.test(sub) ? { accountId: sub, claims: async () => ({ sub, name: sub === sandboxDefaults.accountId ? 'Sandbox User' : sub }) } : undefined,
    interactions: { url: async (_ctx, interaction) => `${sandboxDefaults.idpPath}/interaction/${interaction.uid}` },
    clientBasedCORS: () => false,
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      const rows = Object.entries(out).map(([k, v]) => `<p><b>${escapeHtml(k)}</b>: ${escapeHtml(String(v))}</p>`);
      ctx.body = `<!doctype html><title>Sandbox error</title><h1>Sandbox authorization error</h1>${rows.join('')}`;
    },
  };

  const provider = new Provider(deps.issuer, configuration);
  // Before any client is loaded: oidc-provider checks grant_types against the registered grant types.
  const serviceAccounts = await installJwtBearer(provider, { issuer: deps.issuer, apiBaseUrl, options, lifetimes, resourceScopes: resourceScopes(options) });

  // Any loopback redirect URI for clients registered without redirect_uris (Warrant's callback
  // port changes with every test run); exact matching for everyone else.
  const exactRedirect = provider.Client.prototype.redirectUriAllowed;
  provider.Client.prototype.redirectUriAllowed = function (this: InstanceType<typeof provider.Client>, uri: string) {
    if (exactRedirect.call(this, uri)) return true;
    return options.loopbackRedirectClients.has(this.clientId) && isLoopbackUrl(uri);
  };

  const authorizationPath = provider.pathFor('authorization', { mountPath: '' });
  const tokenPath = provider.pathFor('token', { mountPath: '' });
  // Token requests run one at a time: the read-check-consume of a rotating refresh token is then
  // atomic, as in a production IdP's database, so concurrent reuse is always detected.
  let tokenQueue: Promise<unknown> = Promise.resolve();
  const oneAtATime = (run: () => Promise<unknown>): Promise<unknown> => {
    const turn = tokenQueue.then(run);
    tokenQueue = turn.catch(() => undefined);
    return turn;
  };
  provider.use(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === authorizationPath) {
      // OpenID Connect Core §11 drops offline_access unless prompt=consent; like Auth0 and Okta,
      // the sandbox grants it on the scope alone, so the prompt is implied here.
      const { scope, prompt } = ctx.query;
      const prompts = typeof prompt === 'string' ? prompt.split(' ').filter(Boolean) : [];
      if (typeof scope === 'string' && scope.split(' ').includes('offline_access') && !prompts.includes('consent') && !prompts.includes('none')) {
        ctx.query = { ...ctx.query, prompt: [...prompts, 'consent'].join(' ') };
      }
    }
    if (ctx.method === 'POST' && ctx.path === tokenPath) await oneAtATime(next);
    else await next();
    const oidc = (ctx as unknown as Partial<KoaContextWithOIDC>).oidc;
    const route = oidc?.route;
    if (route === 'token') {
      const grantType = typeof oidc?.params?.grant_type === 'string' ? oidc.params.grant_type : undefined;
      countTokenRequest(stats, grantType, ctx.status);
      log(`token grant_type=${grantType ?? '?'} client=${oidc?.client?.clientId ?? '?'} -> ${ctx.status}`);
    } else if (route === 'revocation') {
      stats.revocations += 1;
      log(`revocation -> ${ctx.status}`);
    } else if (route === 'introspection') {
      stats.introspections += 1;
      log(`introspection -> ${ctx.status}`);
    }
  });

  provider.on('grant.error', (_ctx: unknown, err: { error_detail?: string }) => {
    // oidc-provider destroys the token and revokes the grant when a consumed refresh token comes back.
    if (err.error_detail === 'refresh token already used') {
      stats.reuseDetected += 1;
      log('refresh token reuse detected: grant revoked');
    }
  });
  provider.on('grant.revoked', (_ctx: unknown, grantId: string) => log(`grant ${grantId.slice(0, 6)}… revoked`));
  provider.on('server_error', (_ctx: unknown, err: Error) => log(`server_error: ${err.message}`));

  return { provider, serviceAccounts, inspector: adapter.inspector };
}

/** Kills the grant behind an access or refresh token, as a password reset or an admin would. */
/**
 * Invalidates one access token and nothing else: what a resource server sees when a token dies
 * before its advertised expiry (key rotation at the IdP, a token reset) while the grant lives on.
 */
export async function invalidateAccessToken(provider: Provider, token: string): Promise<boolean> {
  const found = (await provider.AccessToken.find(token, { ignoreExpiration: true })) ?? (await provider.ClientCredentials.find(token, { ignoreExpiration: true }));
  if (!found) return false;
  await found.destroy();
  return true;
}

export async function revokeGrantOf(provider: Provider, token: string): Promise<boolean> {
  const found =
    (await provider.AccessToken.find(token, { ignoreExpiration: true })) ??
    (await provider.RefreshToken.find(token, { ignoreExpiration: true })) ??
    (await provider.AuthorizationCode.find(token, { ignoreExpiration: true }));
  if (found?.grantId) {
    const { grantId } = found;
    await Promise.all([
      provider.AccessToken.revokeByGrantId(grantId),
      provider.RefreshToken.revokeByGrantId(grantId),
      provider.AuthorizationCode.revokeByGrantId(grantId),
      provider.Grant.adapter.destroy(grantId),
    ]);
    return true;
  }
  const cc = await provider.ClientCredentials.find(token, { ignoreExpiration: true });
  if (cc) {
    await cc.destroy();
    return true;
  }
  return false;
}
