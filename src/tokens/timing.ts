// When to refresh, and how long to back off. All times in epoch milliseconds.

export interface TimingSettings {
  /** Refresh this long before expiry (DESIGN: 300 s)… */
  refreshSkewSeconds: number;
  /** …or, for short-lived tokens, when this fraction of the lifetime remains, whichever is sooner to expiry. */
  refreshSkewFraction: number;
}

/** The skew for a token of `lifetimeMs`: 300 s for a 24 h token, 75 s for a 5 min one, 1 s for a 4 s one. */
export function skewMs(lifetimeMs: number | null, s: TimingSettings): number {
  const fixed = s.refreshSkewSeconds * 1000;
  if (lifetimeMs === null || lifetimeMs <= 0) return fixed;
  return Math.min(fixed, Math.floor(lifetimeMs * s.refreshSkewFraction));
}

/**
 * Is a token with this expiry good enough to hand out? It must outlive both the skew and the
 * caller's `minTtl`; a `minTtl` longer than the token can ever live is capped at 90% of the
 * lifetime, so asking for more than the IdP grants cannot turn every call into a refresh.
 */
export function isFresh(now: number, expiresAt: number | null, lifetimeMs: number | null, minTtlMs: number, s: TimingSettings): boolean {
  if (expiresAt === null) return true;
  const wanted = lifetimeMs ? Math.min(minTtlMs, lifetimeMs * 0.9) : minTtlMs;
  return expiresAt - now > Math.max(skewMs(lifetimeMs, s), wanted);
}

/**
 * The scheduler's due time: expiry minus skew, moved up by a little jitter (up to 10% of the skew)
 * so connections minted together do not all refresh in the same tick, and never later than half
 * the provider's idle timeout, so an unused refresh token is kept alive.
 */
export function refreshDueAt(now: number, expiresAt: number | null, lifetimeMs: number | null, s: TimingSettings, idleTimeoutSeconds?: number, random = Math.random): number | null {
  let due: number | null = null;
  if (expiresAt !== null) {
    const skew = skewMs(lifetimeMs, s);
    due = expiresAt - skew - Math.floor(random() * skew * 0.1);
  }
  if (idleTimeoutSeconds) {
    const keepAlive = now + (idleTimeoutSeconds * 1000) / 2;
    due = due === null ? keepAlive : Math.min(due, keepAlive);
  }
  return due;
}

export interface BackoffSettings {
  baseMs: number;
  capMs: number;
}

/** Exponential backoff with full jitter: uniform in [base/2, min(cap, base·2^(n-1))]. */
export function backoffMs(failures: number, b: BackoffSettings, random = Math.random): number {
  const ceiling = Math.min(b.capMs, b.baseMs * 2 ** Math.max(0, failures - 1));
  const floor = Math.min(b.baseMs / 2, ceiling);
  return Math.floor(floor + random() * (ceiling - floor));
}
