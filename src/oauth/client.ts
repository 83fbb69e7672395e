import * as oauth from 'oauth4webapi';
import { SignJWT, importPKCS8 } from 'jose';
import type { Provider, ProviderEnvironment } from '../providers/index.ts';
import { classify, OAuthCallError } from './errors.ts';

/** A token endpoint answer, wire names kept (RFC 6749 §5.1). */
export interface TokenSet {
  access_token: string;
  token_type: string;
  expires_in?: number;
  refresh_token?: string;
  scope?: string;
  /** Every member the IdP sent, minus the tokens (instance_url, realmId …). */
  extra: Record<string, unknown>;
}

export interface IntrospectionResult {
  active: boolean;
  exp?: number;
  scope?: string;
  sub?: string;
}

export interface OAuthClientOptions {
  provider: Provider;
  /** The environment's endpoints with connection placeholders already filled in. */
  endpoints: ProviderEnvironment;
  clientId: string;
  clientSecret?: string;
  timeoutMs: number;
}

const isLoopback = (url: string) => {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\./.test(host);
};

/**
 * Token endpoints disagree with RFC 6749 in small ways; this fetch smooths them over so
 * oauth4webapi sees a conforming answer: JSON request bodies (Atlassian), `Accept: application/json`
 * and errors sent with status 200 (GitHub), missing `token_type`, `expires_in` as a string, and
 * ID tokens we never asked to validate.
 */
function tokenEndpointFetch(provider: Provider) {
  const quirks = provider.token_endpoint;
  return async (url: string, options: oauth.CustomFetchOptions<string, unknown>): Promise<Response> => {
    const headers = new Headers(options.headers as HeadersInit);
    let body = options.body as string | URLSearchParams | undefined;
    if (quirks?.accept) headers.set('accept', quirks.accept);
    if (quirks?.body === 'json' && body instanceof URLSearchParams) {
      body = JSON.stringify(Object.fromEntries(body));
      headers.set('content-type', 'application/json');
    }
    const res = await fetch(url, { method: options.method, headers, body: body as string, redirect: 'manual', signal: options.signal as AbortSignal });
    if (!(res.headers.get('content-type') ?? '').includes('json')) return res;
    let json: Record<string, unknown>;
    try {
      json = (await res.clone().json()) as Record<string, unknown>;
    } catch {
      return res;
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) return res;
    let status = res.status;
    if (status === 200 && typeof json.error === 'string' && (quirks?.errors_with_200 || json.access_token === undefined)) status = 400;
    if (status === 200) {
      if (json.token_type === undefined) json.token_type = 'bearer';
      if (typeof json.expires_in === 'string' && /^\d+$/.test(json.expires_in)) json.expires_in = Number(json.expires_in);
      delete json.id_token;
    }
    return new Response(JSON.stringify(json), { status, headers: res.headers });
  };
}

function clientAuth(opts: OAuthClientOptions): oauth.ClientAuth {
  switch (opts.provider.token_auth_method) {
    case 'client_secret_post':
      return oauth.ClientSecretPost(opts.clientSecret ?? '');
    case 'none':
      return oauth.None();
    case 'private_key_jwt':
      throw new OAuthCallError('misconfigured', 'unsupported', undefined, 'private_key_jwt client authentication is not configured for this provider');
    default:
      return oauth.ClientSecretBasic(opts.clientSecret ?? '');
  }
}

export type OAuthClient = ReturnType<typeof createOAuthClient>;

/** The OAuth protocol calls of one provider environment, on oauth4webapi. Knows nothing of the store. */
export function createOAuthClient(opts: OAuthClientOptions) {
  const { provider, endpoints } = opts;
  const tokenUrl = endpoints.token_url;
  const as: oauth.AuthorizationServer = {
    issuer: endpoints.issuer ?? new URL(tokenUrl ?? endpoints.authorization_url ?? endpoints.api_base_url).origin,
    authorization_endpoint: endpoints.authorization_url,
    token_endpoint: tokenUrl,
    revocation_endpoint: endpoints.revocation_url,
    introspection_endpoint: endpoints.introspection_url,
    authorization_response_iss_parameter_supported: endpoints.issuer ? undefined : false,
  };
  const client: oauth.Client = { client_id: opts.clientId };
  const insecure = [tokenUrl, endpoints.authorization_url, endpoints.revocation_url, endpoints.introspection_url]
    .filter((u): u is string => !!u)
    .every(isLoopback);
  const request = () => ({
    signal: AbortSignal.timeout(opts.timeoutMs),
    [oauth.customFetch]: tokenEndpointFetch(provider),
    [oauth.allowInsecureRequests]: insecure,
  });
  const extraParams = () => new URLSearchParams(provider.token_params ?? {});
  const scopeString = (scopes: string[]) => scopes.join(provider.scope_separator);

  const toTokenSet = (r: oauth.TokenEndpointResponse): TokenSet => {
    const { access_token, token_type, expires_in, refresh_token, scope, ...extra } = r;
    return { access_token, token_type, expires_in, refresh_token, scope, extra };
  };

  async function call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw classify(err, what);
    }
  }

  return {
    provider,
    endpoints,

    /** RFC 6749 §4.1.1 with PKCE S256 (RFC 7636 §4.3) and, when configured, RFC 8707 `resource`. */
    authorizationUrl(params: { redirectUri: string; scopes: string[]; state: string; codeChallenge?: string }): string {
      if (!endpoints.authorization_url) throw new OAuthCallError('misconfigured', 'unsupported', undefined, `${provider.id} has no authorization_url`);
      const url = new URL(endpoints.authorization_url);
      for (const [k, v] of Object.entries(provider.authorization_params ?? {})) url.searchParams.set(k, v);
      url.searchParams.set('response_type', 'code');
      url.searchParams.set('client_id', opts.clientId);
      url.searchParams.set('redirect_uri', params.redirectUri);
      if (params.scopes.length) url.searchParams.set('scope', scopeString(params.scopes));
      url.searchParams.set('state', params.state);
      if (params.codeChallenge) {
        url.searchParams.set('code_challenge', params.codeChallenge);
        url.searchParams.set('code_challenge_method', 'S256');
      }
      if (provider.resource) url.searchParams.set('resource', provider.resource);
      return url.href;
    },

    /** RFC 6749 §4.1.2 response checks (state, RFC 9207 iss), then the §4.1.3 code exchange. */
    async exchangeCode(callback: URLSearchParams, params: { redirectUri: string; codeVerifier?: string; expectedState: string }): Promise<TokenSet> {
      const checked = new URLSearchParams(callback);
      // Without a configured issuer we cannot judge `iss`; drop it rather than compare to a guess.
      if (!endpoints.issuer) checked.delete('iss');
      const validated = await call('authorization response', async () => oauth.validateAuthResponse(as, client, checked, params.expectedState));
      const additional = extraParams();
      if (provider.resource) additional.set('resource', provider.resource);
      return call('code exchange', async () => {
        const res = await oauth.authorizationCodeGrantRequest(as, client, clientAuth(opts), validated, params.redirectUri, params.codeVerifier ?? oauth.nopkce, {
          ...request(),
          additionalParameters: additional,
        });
        return toTokenSet(await oauth.processAuthorizationCodeResponse(as, client, res));
      });
    },

    /** RFC 6749 §6. */
    async refresh(refreshToken: string): Promise<TokenSet> {
      return call('refresh', async () => {
        const res = await oauth.refreshTokenGrantRequest(as, client, clientAuth(opts), refreshToken, { ...request(), additionalParameters: extraParams() });
        return toTokenSet(await oauth.processRefreshTokenResponse(as, client, res));
      });
    },

    /** RFC 6749 §4.4. */
    async clientCredentials(scopes: string[]): Promise<TokenSet> {
      return call('client credentials', async () => {
        const params = extraParams();
        if (scopes.length) params.set('scope', scopeString(scopes));
        if (provider.resource) params.set('resource', provider.resource);
        const res = await oauth.clientCredentialsGrantRequest(as, client, clientAuth(opts), params, request());
        return toTokenSet(await oauth.processClientCredentialsResponse(as, client, res));
      });
    },

    /**
     * RFC 7523 §2.1: a JWT signed with the service account's key is the grant. `iss` is the client id
     * (Google: the service account e-mail), `sub` the user acted for (Salesforce: the username).
     */
    async jwtBearer(params: { privateKeyPem: string; subject?: string; scopes: string[] }): Promise<TokenSet> {
      const settings = provider.jwt_bearer;
      const alg = settings?.algorithm ?? 'RS256';
      return call('jwt bearer', async () => {
        const key = await importPKCS8(params.privateKeyPem, alg);
        const now = Math.floor(Date.now() / 1000);
        const jwt = new SignJWT(params.scopes.length ? { scope: scopeString(params.scopes) } : {})
          .setProtectedHeader({ alg, typ: 'JWT' })
          .setIssuer(opts.clientId)
          .setAudience(settings?.audience ?? tokenUrl!)
          .setIssuedAt(now)
          .setExpirationTime(now + (settings?.assertion_lifetime ?? 300))
          .setJti(crypto.randomUUID());
        if (params.subject) jwt.setSubject(params.subject);
        const assertion = await jwt.sign(key);
        const body = extraParams();
        body.set('assertion', assertion);
        if (params.scopes.length) body.set('scope', scopeString(params.scopes));
        const res = await oauth.genericTokenEndpointRequest(as, client, oauth.None(), 'urn:ietf:params:oauth:grant-type:jwt-bearer', body, request());
        return toTokenSet(await oauth.processGenericTokenEndpointResponse(as, client, res));
      });
    },

    /** RFC 7009 §2.1. */
    async revoke(token: string, hint: 'refresh_token' | 'access_token'): Promise<void> {
      if (!endpoints.revocation_url) throw new OAuthCallError('misconfigured', 'unsupported', undefined, `${provider.id} has no revocation endpoint`);
      await call('revocation', async () => {
        const res = await oauth.revocationRequest(as, client, clientAuth(opts), token, {
          ...request(),
          additionalParameters: { token_type_hint: hint },
        });
        await oauth.processRevocationResponse(res);
      });
    },

    /** RFC 7662 §2. */
    async introspect(token: string, hint: 'refresh_token' | 'access_token'): Promise<IntrospectionResult> {
      if (!endpoints.introspection_url) throw new OAuthCallError('misconfigured', 'unsupported', undefined, `${provider.id} has no introspection endpoint`);
      return call('introspection', async () => {
        const res = await oauth.introspectionRequest(as, client, clientAuth(opts), token, {
          ...request(),
          additionalParameters: { token_type_hint: hint },
        });
        const r = await oauth.processIntrospectionResponse(as, client, res);
        return { active: r.active, exp: r.exp, scope: r.scope, sub: typeof r.sub === 'string' ? r.sub : undefined };
      });
    },
  };
}
