// Retry rules of the proxy (DESIGN.md): which answers are retried, for which requests, how long
// to wait. Full jitter (uniform in [0, base·2^n]) spreads retries of many agents hitting the same
// rate limit; a Retry-After from the upstream is a floor, and nothing waits past the deadline.

const idempotentMethods = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']); // RFC 9110 §9.2.2

export function mayRetry(method: string, headers: Record<string, unknown>): boolean {
  return idempotentMethods.has(method) || headers['idempotency-key'] !== undefined;
}

export const retryableStatus = (status: number) => status === 429 || status === 502 || status === 503 || status === 504;

/** Connection-level failures worth another attempt (reset, refused, timed out before headers). */
export function retryableError(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? '';
  return (
    code === 'ECONNRESET' ||
    code === 'ECONNREFUSED' ||
    code === 'EPIPE' ||
    code === 'ETIMEDOUT' ||
    code === 'UND_ERR_SOCKET' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_CLOSED'
  );
}

export const isTimeout = (err: unknown) => {
  const code = (err as { code?: string; name?: string })?.code ?? '';
  const name = (err as { name?: string })?.name ?? '';
  return code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'ETIMEDOUT' || name === 'TimeoutError' || name === 'AbortError';
};

/** Retry-After (RFC 9110 §10.2.3) in seconds: delta-seconds or an HTTP date. */
export function retryAfterSeconds(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, Math.ceil((at - now) / 1000)) : undefined;
}

export interface RetrySettings {
  maxRetries: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Delay before retry `n` (1-based): full jitter, at least what the upstream asked for. */
export function retryDelayMs(n: number, s: RetrySettings, retryAfter?: number, random = Math.random): number {
  const jittered = Math.floor(random() * Math.min(s.maxDelayMs, s.baseDelayMs * 2 ** (n - 1)));
  return Math.max(jittered, (retryAfter ?? 0) * 1000);
}
