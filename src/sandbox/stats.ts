/**
 * Counters of what the sandbox was asked to do. Token-endpoint requests answered by an injected
 * fault count too (they are requests the client made); a refresh failure is any refresh request
 * not answered 200.
 */
export interface SandboxStats {
  /** Every POST to the token endpoint. */
  tokenRequests: number;
  /** Token requests with grant_type=refresh_token. */
  refreshRequests: number;
  /** Refresh requests not answered 200 (invalid_grant, injected 5xx, …). */
  refreshFailures: number;
  clientCredentialsRequests: number;
  authorizationCodeRequests: number;
  /** Token requests with grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer (RFC 7523). */
  jwtBearerRequests: number;
  /** Requests to the revocation endpoint (RFC 7009). */
  revocations: number;
  /** Requests to the introspection endpoint (RFC 7662). */
  introspections: number;
  /** Every request to the API, whatever its answer. */
  apiRequests: number;
  /** Consumed refresh tokens presented again, each of which revoked its grant. */
  reuseDetected: number;
}

export function emptyStats(): SandboxStats {
  return {
    tokenRequests: 0,
    refreshRequests: 0,
    refreshFailures: 0,
    clientCredentialsRequests: 0,
    authorizationCodeRequests: 0,
    jwtBearerRequests: 0,
    revocations: 0,
    introspections: 0,
    apiRequests: 0,
    reuseDetected: 0,
  };
}

/** Counts one token request by its grant type. */
export function countTokenRequest(stats: SandboxStats, grantType: string | undefined, status: number): void {
  stats.tokenRequests += 1;
  if (grantType === 'refresh_token') {
    stats.refreshRequests += 1;
    if (status !== 200) stats.refreshFailures += 1;
  } else if (grantType === 'client_credentials') {
    stats.clientCredentialsRequests += 1;
  } else if (grantType === 'authorization_code') {
    stats.authorizationCodeRequests += 1;
  } else if (grantType === 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
    stats.jwtBearerRequests += 1;
  }
}
