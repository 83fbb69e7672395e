import * as oauth from 'oauth4webapi';

/**
 * How a failed IdP call should be treated:
 * - `terminal`: the grant is dead (RFC 6749 §5.2 `invalid_grant`, `unauthorized_client`, revoked);
 *   only the owner connecting again helps.
 * - `transient`: network, timeout, 5xx, 429, `temporarily_unavailable`, an answer that could not
 *   be read: retry with backoff.
 * - `misconfigured`: Warrant's client settings are wrong (`invalid_client`, `invalid_scope` …);
 *   every grant of this client fails until an operator fixes them.
 */
export type FailureKind = 'terminal' | 'transient' | 'misconfigured';

export class OAuthCallError extends Error {
  override name = 'OAuthCallError';
  constructor(
    readonly kind: FailureKind,
    /**
     * The OAuth `error` code the IdP sent (RFC 6749 §5.2), or one of Warrant's own:
     * `server_error` (5xx without a code), `rate_limited` (429 without a code), `timeout`,
     * `network_error`, `invalid_response` (an answer that is not a usable token response),
     * `invalid_client` (401 without a code), `not_revoked` (a revocation answer that does not
     * match the provider's `revocation.success` and names no code), `insecure_endpoint`.
     */
    readonly error: string,
    readonly status: number | undefined,
    message: string,
    /** Seconds the IdP asked us to wait (Retry-After), when it said; at most {@link MAX_RETRY_AFTER_SECONDS}. */
    readonly retryAfter?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A failure seen by the transport (src/oauth/fetch.ts) before oauth4webapi gets the answer; it
 * does not yet know which call it belongs to. `classify` turns it into an OAuthCallError.
 */
export class IdpFailure extends Error {
  override name = 'IdpFailure';
  constructor(
    readonly kind: FailureKind,
    readonly error: string,
    readonly status: number | undefined,
    /** Public reason, no value from the answer beyond the status and the error code. */
    readonly reason: string,
    readonly retryAfter?: number,
    options?: { cause?: unknown },
  ) {
    super(reason, options);
  }
}

/** A Retry-After longer than this is read as this: one bad header must not park a grant for days. */
export const MAX_RETRY_AFTER_SECONDS = 3600;

// Beside RFC 6749's codes, the ones Slack sends with HTTP 200 (`{"ok": false, "error": …}`):
// a dead refresh token or revoked grant is terminal; its outages (which Slack documents as
// "some aspect of the operation may have succeeded") are transient.
const terminalErrors = new Set(['invalid_grant', 'unauthorized_client', 'access_denied', 'invalid_token', 'invalid_refresh_token', 'token_revoked']);
const transientErrors = new Set(['temporarily_unavailable', 'server_error', 'slow_down', 'ratelimited', 'internal_error', 'fatal_error', 'service_unavailable', 'request_timeout']);
// RFC 6749 §5.2: error codes are %x20-21 / %x23-5B / %x5D-7E; a code is also a log and audit
// field, so anything longer or outside a plain token alphabet is not repeated.
const ERROR_CODE = /^[A-Za-z0-9_.:-]{1,64}$/;

/** The body's `error` when it is a plausible OAuth error code; never free text. */
export function errorCodeOf(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const error = (body as Record<string, unknown>).error;
  return typeof error === 'string' && ERROR_CODE.test(error) ? error : undefined;
}

/** RFC 9110 §10.2.3: delay-seconds or an HTTP-date; capped. */
export function retryAfterOf(headers: Headers | undefined, now = Date.now()): number | undefined {
  const value = headers?.get('retry-after')?.trim();
  if (!value) return undefined;
  let seconds: number;
  if (/^\d+(\.\d+)?$/.test(value)) seconds = Number(value);
  else {
    const date = Date.parse(value);
    if (!Number.isFinite(date)) return undefined;
    seconds = Math.ceil((date - now) / 1000);
  }
  return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(0, seconds));
}

export const kindOfCode = (code: string, status: number): FailureKind =>
  status >= 500 || status === 429 || transientErrors.has(code) ? 'transient' : terminalErrors.has(code) ? 'terminal' : 'misconfigured';

/**
 * Classifies a non-2xx answer of an IdP endpoint from its status, headers and parsed body (or
 * undefined when the body is not JSON). Decided on the status first: whatever a 5xx says, it is
 * no verdict on the grant (an outage must never kill grants).
 */
export function classifyAnswer(status: number, headers: Headers, body: unknown): IdpFailure {
  const code = errorCodeOf(body);
  const retryAfter = retryAfterOf(headers);
  if (status >= 500) {
    return new IdpFailure('transient', code ?? 'server_error', status, `the IdP answered ${status}${code ? ` ${code}` : ''}`, retryAfter);
  }
  if (status === 429) {
    return new IdpFailure('transient', code ?? 'rate_limited', status, `the IdP answered 429${code ? ` ${code}` : ''}`, retryAfter);
  }
  if (status === 408) return new IdpFailure('transient', 'timeout', status, 'the IdP answered 408', retryAfter);
  if (status >= 400 && code) return new IdpFailure(kindOfCode(code, status), code, status, `the IdP answered ${status} ${code}`, retryAfter);
  // RFC 6749 §5.2: a 401 from the token endpoint is a failed client authentication.
  if (status === 401) return new IdpFailure('misconfigured', 'invalid_client', status, "the IdP refused Warrant's client authentication");
  if (status >= 400) return new IdpFailure('misconfigured', 'invalid_response', status, `unexpected IdP answer ${status}`);
  // 1xx/3xx: a redirect away from the token endpoint (maintenance page, login wall) is not followed.
  return new IdpFailure('transient', 'invalid_response', status, `unexpected IdP answer ${status}`, retryAfter);
}

const NETWORK_CODE = /^(E[A-Z]+|UND_ERR_[A-Z_]+|ERR_SSL_[A-Z_]+|[A-Z_]*CERT[A-Z_]*)$/;

/** What the transport threw (fetch or a body read): a timeout or a network failure. */
export function transportFailure(err: unknown): IdpFailure {
  const name = (err as Error)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new IdpFailure('transient', 'timeout', undefined, 'the IdP did not answer in time', undefined, { cause: safeCause(err) });
  }
  const code = networkCodeOf(err);
  return new IdpFailure('transient', 'network_error', undefined, `the IdP could not be reached${code ? ` (${code})` : ''}`, undefined, { cause: safeCause(err) });
}

function networkCodeOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && depth < 4; e = (e as Error).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && NETWORK_CODE.test(code)) return code;
  }
  return undefined;
}

/**
 * A cause that is safe to log: the error's class, code and message, never its `cause` chain's
 * payload (oauth4webapi attaches the parsed token response, tokens included, as `cause.body`;
 * some IdPs echo the refresh token in `error_description`).
 */
function safeCause(err: unknown): Error {
  const e = err as { name?: string; code?: unknown; message?: string };
  const code = typeof e?.code === 'string' ? e.code : networkCodeOf(err);
  return new Error(`${e?.name ?? 'Error'}${code ? ` ${code}` : ''}: ${String(e?.message ?? err).slice(0, 200)}`);
}

const responseOf = (cause: unknown): Response | undefined => (cause instanceof Response ? cause : undefined);

/** Maps whatever an OAuth call threw to an OAuthCallError. Messages and causes carry no token. */
export function classify(err: unknown, what: string): OAuthCallError {
  if (err instanceof OAuthCallError) return err;
  const fail = (kind: FailureKind, error: string, status: number | undefined, reason: string, retryAfter?: number, cause: unknown = safeCause(err)) =>
    new OAuthCallError(kind, error, status, `${what}: ${reason}`, retryAfter, { cause });
  if (err instanceof IdpFailure) return fail(err.kind, err.error, err.status, err.reason, err.retryAfter, err.cause ?? safeCause(err));
  // The transport (fetch.ts) answers non-2xx itself; these remain for answers it passes on.
  if (err instanceof oauth.ResponseBodyError) {
    const f = classifyAnswer(err.status, err.response.headers, err.cause);
    return fail(f.kind, f.error, f.status, f.reason, f.retryAfter);
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    return fail('misconfigured', 'invalid_client', err.status, "the IdP refused Warrant's client authentication");
  }
  if (err instanceof oauth.AuthorizationResponseError) {
    const code = errorCodeOf({ error: err.error }) ?? 'invalid_response';
    return fail(terminalErrors.has(code) ? 'terminal' : 'misconfigured', code, undefined, `the authorization response carries ${code}`);
  }
  if (err instanceof oauth.UnsupportedOperationError) return fail('misconfigured', 'unsupported', undefined, 'the IdP answer needs an unsupported feature');
  if (err instanceof oauth.OperationProcessingError) {
    const status = responseOf(err.cause)?.status;
    if (status !== undefined && status >= 300) {
      const f = classifyAnswer(status, responseOf(err.cause)!.headers, undefined);
      return fail(f.kind, f.error, f.status, f.reason, f.retryAfter);
    }
    // A 2xx that is not a usable answer, or a failed check of the authorization response.
    return fail('transient', 'invalid_response', status, `the IdP's answer could not be processed (${err.code ?? 'invalid'})`);
  }
  const name = (err as Error)?.name;
  if (name === 'TimeoutError' || name === 'AbortError' || (err instanceof TypeError && (err.message === 'fetch failed' || networkCodeOf(err)))) {
    const f = transportFailure(err);
    return fail(f.kind, f.error, undefined, f.reason);
  }
  const code = (err as NodeJS.ErrnoException)?.code;
  // oauth4webapi's argument checks (ERR_INVALID_ARG_*), jose's key errors (ERR_J*): our input is wrong.
  if (typeof code === 'string' && /^ERR_(INVALID_ARG|J)/.test(code)) return fail('misconfigured', 'invalid_argument', undefined, `Warrant's request could not be built (${code})`);
  return fail('transient', 'unknown', undefined, 'failed');
}

// Codes of failures that happen before a request leaves: nothing reached the IdP.
const NOT_SENT = /\b(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|UND_ERR_CONNECT_TIMEOUT|ERR_SSL_[A-Z_]+|[A-Z_]*CERT[A-Z_]*)\b/;

/**
 * Might the IdP have acted on a call whose answer we did not get, or could not use? A refresh
 * at a rotating provider may then have consumed the stored refresh token. An answer with an
 * error status is the IdP's verdict (it issued nothing); a refused connection never reached it;
 * a timeout, a reset mid-exchange or an unusable 2xx may have.
 */
export function outcomeUnknown(err: OAuthCallError): boolean {
  if (err.status !== undefined && (err.status < 200 || err.status >= 300)) return false;
  if (err.error === 'timeout' || err.error === 'invalid_response' || err.error === 'unknown') return true;
  if (err.error === 'network_error') return !NOT_SENT.test(`${err.message} ${(err.cause as Error | undefined)?.message ?? ''}`);
  return false;
}

