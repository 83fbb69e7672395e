// Waiting out `refresh_unavailable`: the IdP is failing and no valid token is left, so the same
// call may succeed once it is back. The wait honours `retry_after` within one overall deadline.

import { RefreshUnavailableError } from './errors.js';

/** Never retry sooner than this, whatever `retry_after` says. */
const MIN_DELAY_MS = 100;

/**
 * Can this request body be sent a second time? Streams are read once; the others are values.
 * (`FormData` could be, but its multipart boundary would change between sends.)
 */
export function isReplayable(body: unknown): boolean {
  if (body === undefined || body === null) return true;
  if (typeof body === 'string' || body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return true;
  if (body instanceof URLSearchParams) return true;
  return typeof Blob !== 'undefined' && body instanceof Blob;
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
export function sleep(ms: number, signal?: AbortSignal | null): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface WaitOptions {
  /** The overall budget for waiting, from the first attempt; 0 never waits. */
  waitMs: number;
  /** False when the call cannot be sent again (a streamed body): the error is thrown at once. */
  replayable: boolean;
  signal?: AbortSignal | null;
}

/**
 * Runs `attempt`; on `refresh_unavailable` waits `retryAfter` seconds and tries again, as long as
 * the next try starts before the deadline. Past it, the last error is thrown as it is.
 */
export async function retryRefreshUnavailable<T>(attempt: () => Promise<T>, opts: WaitOptions): Promise<T> {
  const deadline = Date.now() + opts.waitMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof RefreshUnavailableError) || !opts.replayable || opts.waitMs <= 0) throw err;
      const delay = Math.max(MIN_DELAY_MS, (err.retryAfter ?? 1) * 1000);
      if (Date.now() + delay > deadline) throw err;
      await sleep(delay, opts.signal);
    }
  }
}
