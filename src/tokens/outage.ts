// What the token service does while a connection's IdP is failing (DESIGN "Token lifecycle",
// transient branch). All times in epoch milliseconds.

/** An agent waiting on a failing connection may send one probe refresh this often, across instances. */
export const PROBE_INTERVAL_MS = 2_000;

/** IdPs count `expires_in` from an issue time truncated to the second (JWT `iat`). */
const ISSUE_TRUNCATION_MS = 1_000;

/**
 * How long before its booked expiry a stale token stops being served: min(30 s, 10% of its
 * lifetime), plus the second by which the IdP's own expiry may precede ours. An API judges expiry
 * by its own clock: a token served in its last moments would come back as a 401 that no refresh
 * can heal while the IdP is down.
 */
export function staleMarginMs(lifetimeMs: number | null): number {
  const share = lifetimeMs === null || lifetimeMs <= 0 ? 30_000 : Math.min(30_000, Math.floor(lifetimeMs * 0.1));
  return share + ISSUE_TRUNCATION_MS;
}

/** May a token with this expiry still be served while its refresh is failing? */
export function staleServable(now: number, expiresAt: number | null, lifetimeMs: number | null): boolean {
  return expiresAt === null || expiresAt - now > staleMarginMs(lifetimeMs);
}

/**
 * When the next probe may go out: one interval after the row last changed. A failed attempt
 * writes the row (failure count, backoff) under the connection's lock, so the instance that takes
 * the lock next sees the attempt and does not probe again within the interval.
 */
export const nextProbeAt = (row: { updated_at: number }) => row.updated_at + PROBE_INTERVAL_MS;

/**
 * The expiry of a token the IdP issued in answer to a request sent at `sentAt`: counted from the
 * send, not the receipt, since the IdP issued it somewhere in between (a slow answer must not
 * stretch the booked life past the IdP's).
 */
export const expiryFrom = (sentAt: number, lifetimeSeconds: number) => sentAt + lifetimeSeconds * 1000;
