import * as oauth from 'oauth4webapi';
import { SignJWT, importPKCS8 } from 'jose';
import { responseScopeSeparator, type Provider, type ProviderEnvironment } from '../providers/index.ts';
import { classify, OAuthCallError } from './errors.ts';
import { privateKeyJwt } from './client-assertion.ts';
import { idpFetch, type IdpEndpoint, type IdpGuard } from './fetch.ts';
import { askApiWithToken, revokeShaped, type ApiCheck } from './revocation.ts';
import { normaliseTokenResponse } from './token-response.ts';

/** A token endpoint answer, wire names kept (RFC 6749 §5.1), normalised by token-response.ts. */
export interface TokenSet {
  /** Never empty, no control characters. */
  access_token: string;
  /** Lower-cased, any type the IdP named (`bearer` when it named none). */
  token_type: string;
  /** Whole seconds, 1 … MAX_EXPIRES_IN_SECONDS; undefined when the IdP gave no usable lifetime. */
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
  /** PKCS#8 PEM private key of a `private_key_jwt` client (the definition's `client_private_key`). */
  clientPrivateKey?: string;
  /** The definition's `api_headers` with the connection's params filled in, for the API call that verifies a revocation. */
  apiHeaders?: Record<string, string>;
  timeoutMs: number;
  /** The SSRF guard every IdP call of this client connects through (endpoints from remote metadata). */
  guard?: IdpGuard;
}

const isLoopback = (url: string) => {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\./.test(host);
};

/**
 * RFC 6749 §7.1 lets a client refuse a token type it does not understand; Warrant never uses
 * `token_type` (the provider definition says how a token is presented), so every type is
 * "recognised" and kept as the IdP sent it (`bot`, `mac` …).
 */
const anyTokenType: oauth.RecognizedTokenTypes = new Proxy({}, { get: (_, key) => (typeof key === 'string' ? () => {} : undefined) });
const tokenOptions = { recognizedTokenTypes: anyTokenType };

/** One `private_key_jwt` ClientAuth per client options, so the key is imported once. */
const assertionAuths = new WeakMap<OAuthClientOptions, oauth.ClientAuth>();

function clientAuth(opts: OAuthClientOptions): oauth.ClientAuth {
  switch (opts.provider.token_auth_method) {
    case 'client_secret_post':
      return oauth.ClientSecretPost(opts.clientSecret ?? '');
    case 'none':
      return oauth.None();
    case 'private_key_jwt': {
      // RFC 7523 §2.2: generic for any provider whose client has a private key (client-assertion.ts).
      if (!opts.clientPrivateKey) throw new OAuthCallError('misconfigured', 'invalid_key', undefined, `${opts.provider.id} uses private_key_jwt but has no client_private_key configured`);
      let auth = assertionAuths.get(opts);
      if (!auth) assertionAuths.set(opts, (auth = privateKeyJwt(opts.clientPrivateKey, opts.provider.client_assertion_alg)));
      return auth;
    }
    default:
      return clientSecretBasic(opts.clientSecret ?? '');
  }
}

/** application/x-www-form-urlencoded as WHATWG URL serialises it: `-._*` and alphanumerics stay as they are. */
const formEncode = (s: string) => new URLSearchParams([['', s]]).toString().slice(1);

/**
 * RFC 6749 §2.3.1 Basic: id and secret form-encoded, then RFC 7617. oauth4webapi also encodes
 * `-._~*'()!`, which a server that decodes reads the same, but many (the MCP SDK's own server
 * among them) compare the raw text: `pre-registered-client` arrived as `pre%2Dregistered%2Dclient`.
 * Leaving the characters the form serialiser leaves is equal for a decoding server and right for
 * the others; `:`, `%`, `+` and spaces are still encoded, so the split stays unambiguous.
 */
function clientSecretBasic(clientSecret: string): oauth.ClientAuth {
  return (_as, client, _body, headers) => {
    headers.set('authorization', `Basic ${Buffer.from(`${formEncode(client.client_id)}:${formEncode(clientSecret)}`).toString('base64')}`);
  };
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
    authorization_response_iss_parameter_supported: endpoints.issuer ? provider.authorization_response_iss_parameter_supported : false,
  };
  // RFC 6749 §6 sends refreshes to the token endpoint; a few IdPs have one of their own (Figma).
  const refreshAs: oauth.AuthorizationServer = endpoints.refresh_url ? { ...as, token_endpoint: endpoints.refresh_url } : as;
  const client: oauth.Client = { client_id: opts.clientId };
  const insecure = [tokenUrl, endpoints.refresh_url, endpoints.authorization_url, endpoints.revocation_url, endpoints.introspection_url]
    .filter((u): u is string => !!u)
    .every(isLoopback);
  const fetchers = { token: idpFetch(provider, 'token', opts.guard), revocation: idpFetch(provider, 'revocation', opts.guard), introspection: idpFetch(provider, 'introspection', opts.guard) };
  const request = (endpoint: IdpEndpoint = 'token') => ({
    signal: AbortSignal.timeout(opts.timeoutMs),
    [oauth.customFetch]: fetchers[endpoint],
    [oauth.allowInsecureRequests]: insecure,
  });
  const extraParams = () => new URLSearchParams(provider.token_params ?? {});
  const scopeString = (scopes: string[]) => scopes.join(provider.scope_separator);

  // The transport already normalised the answer; checked again here so a TokenSet is well-typed
  // whatever path produced it (see token-response.ts).
  const toTokenSet = (r: oauth.TokenEndpointResponse): TokenSet => {
    const n = normaliseTokenResponse(r as unknown as Record<string, unknown>, responseScopeSeparator(provider));
    if (!n.ok) throw new OAuthCallError('transient', 'invalid_response', 200, `the token response's ${n.field} ${n.reason}`);
    const { access_token, token_type, expires_in, refresh_token, scope, ...extra } = n.json;
    return {
      access_token: access_token as string,
      token_type: token_type as string,
      expires_in: expires_in as number | undefined,
      refresh_token: refresh_token as string | undefined,
      scope: scope as string | undefined,
      extra,
    };
  };

  /**
   * RFC 9207 §2.4: an `iss` in the authorization response must be this environment's issuer, and
   * one the IdP always sends must be there; otherwise the response may come from another
   * authorization server (mix-up, RFC 9700 §4.4) and its code is never sent anywhere. The value
   * received is not repeated: it is the sender's text.
   */
  function checkIssuer(iss: string | null): void {
    if (!endpoints.issuer) return;
    if (iss === null && provider.authorization_response_iss_parameter_supported) {
      throw new OAuthCallError('terminal', 'issuer_missing', undefined, `the authorization response has no iss, which ${provider.id} always sends (RFC 9207): refused as a possible mix-up`);
    }
    if (iss !== null && iss !== endpoints.issuer) {
      throw new OAuthCallError('terminal', 'issuer_mismatch', undefined, `the authorization response's iss is not ${provider.id}'s issuer ${endpoints.issuer} (RFC 9207): refused as a possible mix-up`);
    }
  }

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
      // Slack user tokens: `user_scope`.
      if (params.scopes.length && provider.idp_scopes) url.searchParams.set(provider.scope_param, scopeString(params.scopes));
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
      checkIssuer(callback.get('iss'));
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
        return toTokenSet(await oauth.processAuthorizationCodeResponse(as, client, res, tokenOptions));
      });
    },

    /** RFC 6749 §6. */
    async refresh(refreshToken: string): Promise<TokenSet> {
      return call('refresh', async () => {
        const res = await oauth.refreshTokenGrantRequest(refreshAs, client, clientAuth(opts), refreshToken, { ...request(), additionalParameters: extraParams() });
        return toTokenSet(await oauth.processRefreshTokenResponse(refreshAs, client, res, tokenOptions));
      });
    },

    /** RFC 6749 §4.4. */
    async clientCredentials(scopes: string[]): Promise<TokenSet> {
      return call('client credentials', async () => {
        const params = extraParams();
        if (scopes.length) params.set('scope', scopeString(scopes));
        if (provider.resource) params.set('resource', provider.resource);
        const res = await oauth.clientCredentialsGrantRequest(as, client, clientAuth(opts), params, request());
        return toTokenSet(await oauth.processClientCredentialsResponse(as, client, res, tokenOptions));
      });
    },

    /**
     * RFC 7523 §2.1: a JWT signed with the service account's key is the grant. `iss` is the client id
     * (Google: the service account e-mail), `sub` the user acted for (Salesforce: the username).
     */
    async jwtBearer(params: { privateKeyPem: string; subject?: string; scopes: string[] }): Promise<TokenSet> {
      const settings = provider.jwt_bearer;
      const alg = settings?.algorithm ?? 'RS256';
      const key = await importPKCS8(params.privateKeyPem, alg).catch((err: unknown) => {
        throw new OAuthCallError('misconfigured', 'invalid_key', undefined, `jwt bearer: the private key cannot be read as a PKCS#8 ${alg} key`, undefined, {
          cause: new Error((err as Error)?.name ?? 'Error'),
        });
      });
      return call('jwt bearer', async () => {
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
        return toTokenSet(await oauth.processGenericTokenEndpointResponse(as, client, res, tokenOptions));
      });
    },

    /**
     * RFC 7009 §2.1, or the shape of the provider's `revocation` block (revocation.ts). Resolves
     * only when the IdP revoked; an answer that says it did not throws, never passes as done.
     */
    async revoke(token: string, hint: 'refresh_token' | 'access_token'): Promise<void> {
      const revocationUrl = endpoints.revocation_url;
      if (!revocationUrl) throw new OAuthCallError('misconfigured', 'unsupported', undefined, `${provider.id} has no revocation endpoint`);
      const shape = provider.revocation;
      if (shape) {
        const target = { provider, shape, url: revocationUrl, clientId: opts.clientId, clientSecret: opts.clientSecret, clientAuth: () => clientAuth(opts), as, client, timeoutMs: opts.timeoutMs, guard: opts.guard };
        return call('revocation', () => revokeShaped(target, token, hint));
      }
      await call('revocation', async () => {
        const res = await oauth.revocationRequest(as, client, clientAuth(opts), token, {
          ...request('revocation'),
          additionalParameters: { token_type_hint: hint },
        });
        await oauth.processRevocationResponse(res);
      });
    },

    /**
     * Whether the API refuses `accessToken` (GET `revocation.verify_path`): how a revocation is
     * verified where there is no introspection and no refresh token to try. Never throws.
     */
    async checkTokenRefused(accessToken: string): Promise<ApiCheck> {
      const verifyPath = provider.revocation?.verify_path;
      if (!verifyPath) return { outcome: 'inconclusive', detail: `could not verify: ${provider.id} has no revocation.verify_path` };
      if (/\{[a-z][a-z0-9_]*\}/.test(endpoints.api_base_url)) return { outcome: 'inconclusive', detail: 'could not verify: the API base URL lacks a connection param' };
      return askApiWithToken(provider, { apiBaseUrl: endpoints.api_base_url, verifyPath, apiHeaders: opts.apiHeaders ?? {}, timeoutMs: opts.timeoutMs, guard: opts.guard }, accessToken);
    },

    /** RFC 7662 §2. */
    async introspect(token: string, hint: 'refresh_token' | 'access_token'): Promise<IntrospectionResult> {
      if (!endpoints.introspection_url) throw new OAuthCallError('misconfigured', 'unsupported', undefined, `${provider.id} has no introspection endpoint`);
      return call('introspection', async () => {
        const res = await oauth.introspectionRequest(as, client, clientAuth(opts), token, {
          ...request('introspection'),
          additionalParameters: { token_type_hint: hint },
        });
        const r = await oauth.processIntrospectionResponse(as, client, res);
        return { active: r.active, exp: r.exp, scope: r.scope, sub: typeof r.sub === 'string' ? r.sub : undefined };
      });
    },
  };
}
