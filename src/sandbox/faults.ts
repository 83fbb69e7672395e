import { z } from 'zod';

// Injected faults. `count` limits the transient ones (status and delay) to that many requests;
// `bodyLevelAuthFailure` is a mode that stays until the faults are set again.

export interface SandboxFaults {
  tokenEndpoint?: {
    /** Answer this status with `{"error":"temporarily_unavailable"}` instead of handling the request, e.g. 503. */
    status?: number;
    /** Wait this long before answering (or before handling, when no status is set). */
    delayMs?: number;
    /** How many requests are affected; default unlimited. */
    count?: number;
    /** Seconds sent as `Retry-After` with the status. */
    retryAfter?: number;
  };
  api?: {
    /** An expired or invalid token answers 200 `{"ok":false,"error":"token_expired"|"invalid_auth"}` (Slack style) instead of 401. */
    bodyLevelAuthFailure?: boolean;
    /** Answer this status before the token is even looked at, e.g. 503, 429, 502. */
    status?: number;
    /** Seconds sent as `Retry-After` with the status. */
    retryAfter?: number;
    /** How many requests are affected by `status` and `delayMs`; default unlimited. */
    count?: number;
    delayMs?: number;
  };
}

const status = z.number().int().min(400).max(599);
const delayMs = z.number().int().min(0).max(120_000);
const count = z.number().int().min(0);
const retryAfter = z.number().int().min(0);

export const faultsSchema = z.strictObject({
  tokenEndpoint: z.strictObject({ status: status.optional(), delayMs: delayMs.optional(), count: count.optional(), retryAfter: retryAfter.optional() }).optional(),
  api: z
    .strictObject({
      bodyLevelAuthFailure: z.boolean().optional(),
      status: status.optional(),
      retryAfter: retryAfter.optional(),
      count: count.optional(),
      delayMs: delayMs.optional(),
    })
    .optional(),
});

/** What one request suffers. */
export interface FaultHit {
  status?: number;
  delayMs?: number;
  retryAfter?: number;
  /** Requests still to be affected after this one (Infinity when unlimited). */
  left: number;
}

export interface FaultState {
  /** Replaces every fault; `{}` clears them. Throws a TypeError on a malformed value. */
  set(f: SandboxFaults): void;
  get(): SandboxFaults;
  /** Takes one request's worth of the transient fault of `target`, if any is left. */
  take(target: 'tokenEndpoint' | 'api'): FaultHit | undefined;
  bodyLevelAuthFailure(): boolean;
}

export function createFaultState(): FaultState {
  let faults: SandboxFaults = {};
  const left = { tokenEndpoint: 0, api: 0 };
  return {
    set(f) {
      const parsed = faultsSchema.safeParse(f);
      if (!parsed.success) {
        throw new TypeError(`invalid sandbox faults: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      }
      faults = structuredClone(parsed.data);
      left.tokenEndpoint = faults.tokenEndpoint?.count ?? Infinity;
      left.api = faults.api?.count ?? Infinity;
    },
    get: () => structuredClone(faults),
    take(target) {
      const f = faults[target];
      if (!f || (f.status === undefined && !f.delayMs) || left[target] <= 0) return undefined;
      left[target] -= 1;
      return { status: f.status, delayMs: f.delayMs, retryAfter: f.retryAfter, left: left[target] };
    },
    bodyLevelAuthFailure: () => faults.api?.bodyLevelAuthFailure === true,
  };
}
