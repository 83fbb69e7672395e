import { createHash } from 'node:crypto';

// What a persona says about its provider: data, plus small shape functions for the answers whose
// form is the provider's own. Behaviour (grants, rotation, checks) is the engine's (engine.ts).
// Every URL here is the provider's real one; the engine serves it at `{origin}/{host}{path}`.

/** An HTTP answer: status, JSON body (absent: empty), extra headers. */
export interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** How a client authenticates at the token endpoint: HTTP Basic, form-body secret, JSON-body secret, none. */
export type ClientAuth = 'basic' | 'post' | 'json' | 'none';

/** The engine's reasons for refusing a token request, mapped by the persona to its own codes. */
export type TokenErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unsupported_grant_type'
  | 'redirect_uri_mismatch'
  | 'invalid_code_verifier';

/** Why the API refuses a token. `revoked`: the grant behind it was revoked upstream. */
export type RefusalReason = 'missing' | 'expired' | 'invalid' | 'revoked';

/** One token set the engine issued, handed to the persona's response shape. */
export interface Issued {
  grantType: 'authorization_code' | 'refresh_token';
  access_token: string;
  refresh_token?: string;
  /** Seconds until the access token expires; absent when it does not. */
  expires_in?: number;
  scopes: string[];
  /** The tenant the grant reaches (Xero tenantId, Atlassian cloud id, QuickBooks realmId, freee company_id). */
  tenantId: string;
  userId: string;
  clientId: string;
  issuedAt: number;
  /** Slack: the user token set issued with the bot one (`user_scope`). */
  secondary?: Issued;
  /** This set is itself the second one (a Slack user token being refreshed). */
  isSecondary: boolean;
  /** A real provider URL as served by this sandbox (`https://x.example/p` → `http://127.0.0.1:N/x.example/p`). */
  url(real: string): string;
  /** For answers signed with the client secret (Salesforce `signature`). */
  clientSecret: string;
}

export interface ApiRoute {
  method: string | readonly string[];
  /** Relative to an API base: `*` one segment, `**` any rest. */
  path: string;
  /** Any one of these opens the route; empty: any valid token. Compared without regard to case. */
  scopes: readonly string[];
  /** Only when the raw request body matches (Linear: GraphQL mutations need `write`). */
  bodyMatch?: RegExp;
  status?: number;
  body?: unknown;
}

export interface Persona {
  id: string;
  name: string;
  /** Catalog entries this persona stands for; the first is what its definition extends by default. */
  catalog: readonly string[];
  /** Real hosts it serves; every URL below is on one of them. */
  hosts: readonly string[];
  /** Headers every OAuth and API request must carry (Notion-Version); a missing one answers `missingHeader`. */
  requiredHeaders?: readonly string[];
  missingHeader?: (name: string) => Answer;
  authorize: {
    url: string;
    /** How the request's scopes are separated. */
    separator: string;
    /** Slack's `user_scope`: a second token set with its own scopes. */
    secondaryScopeParam?: string;
    /** No OAuth scopes (Notion): every grant holds these capabilities, whatever the request says. */
    capabilities?: readonly string[];
    /** Sent as `iss` on the redirect (RFC 9207), only where the provider does. */
    iss?: string;
    /** Parameters the provider insists on (Atlassian `audience`); without them the redirect carries invalid_request. */
    requiredParams?: Record<string, string>;
    /** Extra callback parameters (QuickBooks `realmId`). */
    callbackParams?: (tenantId: string) => Record<string, string>;
  };
  token: {
    url: string;
    /** The request body's format; a request in the other one is refused with invalid_request. */
    body: 'form' | 'json';
    clientAuth: readonly ClientAuth[];
    /** Default access-token lifetime in seconds; absent: tokens do not expire (until the knob sets one). */
    accessTtl?: number;
    /** Whether the answer carries `expires_in` (Salesforce, GitHub: never). */
    sendsExpiresIn: boolean;
    /** When a refresh token is issued at the code exchange. */
    refreshToken: 'always' | 'never' | { scope: string } | { param: string; value: string };
    /**
     * `always`: every refresh returns a new refresh token; `never`: the same one stays (and is
     * not echoed unless `echoRefreshToken`); `{ afterSeconds }`: a new one once the old is that old
     * (Intuit), the same one before.
     */
    rotation: 'always' | 'never' | { afterSeconds: number };
    echoRefreshToken?: boolean;
    /** Seconds a rotated-out refresh token still works (Xero 1800, Atlassian 600). */
    graceSeconds?: number;
    /** A rotated-out refresh token keeps working (Microsoft). */
    reusable?: boolean;
    /** Reuse of a rotated-out refresh token outside the grace revokes the whole grant. */
    reuseRevokesGrant?: boolean;
    prefix?: { access?: string; refresh?: string; secondaryAccess?: string; secondaryRefresh?: string };
    /** The answer is form-encoded unless the request's Accept names application/json (GitHub). */
    formUnlessAcceptJson?: boolean;
    response(t: Issued): Record<string, unknown>;
    error(code: TokenErrorCode, grantType: string | undefined): Answer;
  };
  revocation?: {
    /** May hold `{client_id}` (GitHub). */
    url: string;
    method: 'POST' | 'DELETE';
    /** `query-or-form`: `?token=` or a form body (Google). `none`: the bearer token is the one revoked. */
    body: 'form' | 'json' | 'query-or-form' | 'none';
    /** Body members that may carry the token. */
    tokenFields: readonly string[];
    /** `client`: as at the token endpoint; `basic`: HTTP Basic only; `bearer`: the token itself. */
    auth: 'client' | 'basic' | 'bearer' | 'none';
    ok: Answer;
    /** `unknown_token`: not issued or already revoked; `bad_client`; `bad_request`: no token found in the request. */
    fail(reason: 'unknown_token' | 'bad_client' | 'bad_request'): Answer;
  };
  /** RFC 7662-like introspection (`{active}`), where the provider has one. */
  introspection?: { url: string; body: 'form' | 'json'; auth: 'client' | 'basic' };
  /** Post-consent tenant discovery: GET with the access token. */
  /**
   * OpenID Connect discovery (`{issuer}/.well-known/openid-configuration`) as the provider publishes
   * it, its endpoints this persona's own: what `warrant doctor` compares the catalog with.
   */
  discovery?: { issuer: string; codeChallengeMethods: readonly string[]; extra?: Record<string, unknown> };
  tenants?: { url: string; body(tenantId: string, scopes: string[], url: (real: string) => string): unknown };
  /** The tenant id's form. */
  tenantKind: 'uuid' | 'numeric';
  api: {
    /**
     * The real API base the definition's `api_base_url` is pointed at when the catalog's is taken
     * from the token answer (Salesforce `{instance_url}/…`): the answer names the real org, not the sandbox.
     */
    definitionBase?: string;
    /** API bases (real URLs); `{tenant}` stands for the grant's tenant id. */
    bases: readonly string[];
    routes: readonly ApiRoute[];
    refuse(reason: RefusalReason): Answer;
    missingScope(needed: readonly string[], granted: readonly string[]): Answer;
    /** A header that must name the grant's tenant (Xero-tenant-id), and the answer when it does not. */
    tenantHeader?: { name: string; wrong: Answer };
    /** Headers on every answered API call (GitHub X-OAuth-Scopes). */
    headers?(granted: readonly string[]): Record<string, string>;
  };
  /** What this persona deliberately does not model; printed by docs and the report. */
  notModelled: readonly string[];
}

/** RFC 6749 §5.2 error answers, the default shape. */
export function rfcTokenError(code: TokenErrorCode, status = code === 'invalid_client' ? 401 : 400): Answer {
  const error = code === 'redirect_uri_mismatch' || code === 'invalid_code_verifier' ? 'invalid_grant' : code;
  return { status, body: { error, error_description: describeTokenError(code) } };
}

export function describeTokenError(code: TokenErrorCode): string {
  switch (code) {
    case 'invalid_request':
      return 'the request is malformed or not in the expected format';
    case 'invalid_client':
      return 'client authentication failed';
    case 'invalid_grant':
      return 'the code or refresh token is invalid, expired, used or revoked';
    case 'unsupported_grant_type':
      return 'grant type not supported';
    case 'redirect_uri_mismatch':
      return 'redirect_uri does not match the authorization request';
    case 'invalid_code_verifier':
      return 'PKCE verification failed';
  }
}

/** RFC 7009 revocation answers: 200 for any token (§2.2), 401 for a bad client. */
export const rfc7009: Pick<NonNullable<Persona['revocation']>, 'ok' | 'fail'> = {
  ok: { status: 200 },
  fail: (reason) =>
    reason === 'bad_client'
      ? { status: 401, body: { error: 'invalid_client' } }
      : reason === 'bad_request'
        ? { status: 400, body: { error: 'invalid_request' } }
        : { status: 200 },
};

/** A UUID derived from a seed, so an answer that names a tenant's other ids stays the same across calls. */
export function stableUuid(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
