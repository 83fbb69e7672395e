import * as oauth from 'oauth4webapi';

/**
 * How a failed IdP call should be treated:
 * - `terminal`: the grant is dead (RFC 6749 §5.2 `invalid_grant`, `unauthorized_client`, revoked);
 *   only the owner connecting again helps.
 * - `transient`: network, timeout, 5xx, 429, `temporarily_unavailable`: retry with backoff.
 * - `misconfigured`: Warrant's client settings are wrong (`invalid_client`, `invalid_scope` …);
 *   every grant of this client fails until an operator fixes them.
 */
export type FailureKind = 'terminal' | 'transient' | 'misconfigured';

export class OAuthCallError extends Error {
  override name = 'OAuthCallError';
  constructor(
    readonly kind: FailureKind,
    /** The OAuth `error` code, or `network_error` / `timeout` / `invalid_response`. */
    readonly error: string,
    readonly status: number | undefined,
    message: string,
    /** Seconds the IdP asked us to wait (Retry-After), when it said. */
    readonly retryAfter?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const terminalErrors = new Set(['invalid_grant', 'unauthorized_client', 'access_denied', 'invalid_token']);
const transientErrors = new Set(['temporarily_unavailable', 'server_error', 'slow_down']);

function retryAfterOf(response: Response | undefined): number | undefined {
  const value = response?.headers.get('retry-after');
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, Math.ceil((date - Date.now()) / 1000)) : undefined;
}

/** Maps whatever an oauth4webapi call threw to an OAuthCallError. Messages carry no token. */
export function classify(err: unknown, what: string): OAuthCallError {
  if (err instanceof OAuthCallError) return err;
  if (err instanceof oauth.ResponseBodyError) {
    const status = err.status;
    const kind: FailureKind =
      status >= 500 || status === 429 || transientErrors.has(err.error)
        ? 'transient'
        : terminalErrors.has(err.error)
          ? 'terminal'
          : 'misconfigured';
    return new OAuthCallError(kind, err.error, status, `${what}: the IdP answered ${status} ${err.error}`, retryAfterOf(err.response), { cause: err });
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    return new OAuthCallError('misconfigured', 'invalid_client', err.status, `${what}: the IdP refused Warrant's client authentication`, undefined, { cause: err });
  }
  const name = (err as Error)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new OAuthCallError('transient', 'timeout', undefined, `${what}: the IdP did not answer in time`, undefined, { cause: err });
  }
  if (err instanceof oauth.OperationProcessingError) {
    const response = (err.cause as Response | undefined) instanceof Response ? (err.cause as Response) : undefined;
    const status = response?.status;
    if (status !== undefined && status >= 400 && status < 500 && status !== 429) {
      return new OAuthCallError('misconfigured', 'invalid_response', status, `${what}: unexpected IdP answer ${status}`, undefined, { cause: err });
    }
    return new OAuthCallError('transient', 'invalid_response', status, `${what}: the IdP's answer could not be processed (${err.code ?? 'invalid'})`, retryAfterOf(response), { cause: err });
  }
  if (err instanceof TypeError || (err as NodeJS.ErrnoException)?.code) {
    return new OAuthCallError('transient', 'network_error', undefined, `${what}: the IdP could not be reached`, undefined, { cause: err });
  }
  return new OAuthCallError('transient', 'unknown', undefined, `${what}: failed`, undefined, { cause: err });
}
