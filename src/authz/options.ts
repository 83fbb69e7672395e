// Every setting of Warrant's authorization server and its default, in one place.

export const authzDefaults = {
  /** Scopes the server knows besides openid/offline_access (resources.ts says which resource takes which). */
  scopes: ['warrant:api', 'mcp', 'warrant:read', 'warrant:call', 'warrant:request'],
  ttlSeconds: {
    /** RFC 9068 JWT access tokens: also the longest a revoked agent's token still verifies offline. */
    accessToken: 600,
    authorizationCode: 60,
    /** Idle lifetime of a refresh token; each rotation starts a new one. */
    refreshToken: 30 * 86_400,
    /** Absolute lifetime of a grant (the refresh token family). */
    grant: 90 * 86_400,
    session: 86_400,
    interaction: 600,
    /** RFC 8628 device code (and its user code): how long the owner has to approve. */
    deviceCode: 600,
  },
  /** A dynamically registered client with no token issued for this long (ms) expires and is swept. */
  clientUnusedMs: 90 * 86_400_000,
  /** RFC 8628 §3.2 `interval`: seconds between a device's polls; faster gets `slow_down`. */
  devicePollIntervalSeconds: 5,
  /** Identity Assertion JWT Authorization Grants from enterprise IdPs (id-jag.ts, SEP-990). */
  idJag: {
    /** Leeway on the assertion's `exp` and `iat`, for clocks a little apart. */
    clockSkewSeconds: 30,
    /** Longest `exp - iat` accepted (IdPs issue ID-JAGs for minutes); also bounds the replay store. */
    maxLifetimeSeconds: 3600,
    /** Longest `assertion` read. */
    maxAssertionLength: 16_384,
  },
  /** Owner login codes (login-codes.ts). */
  loginCodeTtlSeconds: 600,
  /** Expired rows are kept this long (so "expired" differs from "unknown"), then swept. */
  sweepRetentionMs: 10 * 60_000,
  sweepIntervalMs: 5 * 60_000,
  sweepBatch: 500,
  /** Client ID Metadata Documents (cimd.ts): a client_id that is an https URL, fetched through the SSRF guard. */
  clientIdMetadataDocument: {
    /** The draft's suggested cap (§4): a client's metadata is a few hundred bytes. */
    bodyLimitBytes: 5 * 1024,
    /** The document's Cache-Control max-age (or Expires) is clamped to these bounds, in seconds. */
    cacheSeconds: { min: 60, max: 86_400 },
    /** Longest client_id URL fetched (it becomes an agent's oauth_client and a token's client_id). */
    maxUrlLength: 2000,
    /** A URL whose document could not be used is refused without a new fetch this long (seconds), per instance. */
    failureSeconds: 30,
    /** How many such URLs each instance remembers. */
    failureEntries: 1000,
  },
  /** Deadline (ms) of each fetch the authorization server makes (metadata documents, a client's jwks_uri), body included. */
  outboundTimeoutMs: 2000,
  /** Cap of the other documents it may fetch (a client's jwks_uri, sector_identifier_uri). */
  outboundBodyLimitBytes: 64 * 1024,
};

/** Paths of the authorization server; `/oauth/…` is the upstream connect callback, not this. */
export const authzPaths = {
  routes: {
    authorization: '/oauth2/authorize',
    token: '/oauth2/token',
    registration: '/oauth2/register',
    revocation: '/oauth2/revoke',
    introspection: '/oauth2/introspect',
    jwks: '/oauth2/jwks',
    userinfo: '/oauth2/userinfo',
    code_verification: '/oauth2/device',
    device_authorization: '/oauth2/device/auth',
    end_session: '/oauth2/session/end',
    pushed_authorization_request: '/oauth2/par',
    backchannel_authentication: '/oauth2/backchannel',
    challenge: '/oauth2/challenge',
    credential: '/oauth2/credential',
  },
  prefix: '/oauth2/',
  interaction: '/oauth2/interaction',
  /** RFC 8414 §3 and OpenID Connect Discovery 1.0 §4: the same document at both. */
  metadata: ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration'],
};
