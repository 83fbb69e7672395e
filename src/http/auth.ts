import type { FastifyRequest } from 'fastify';
import { isIPv6 } from 'node:net';
import { defaults } from '../config/index.ts';
import { WarrantError } from '../errors/index.ts';
import { createMemoryBuckets } from '../limits/index.ts';
import { actorOf, ADMIN_TOKEN_PRINCIPAL, requiredRole, roleAllows, type AdminPrincipal } from '../admin/index.ts';

/** The token of an `Authorization: Bearer …` header (RFC 6750 §2.1), or undefined. */
export function bearerFrom(header: string | undefined): string | undefined {
  const m = header ? /^Bearer[ ]+([\x21-\x7e]+)\s*$/i.exec(header) : null;
  return m?.[1];
}

export const bearerOf = (request: FastifyRequest): string | undefined => bearerFrom(request.headers.authorization);

/** Failed admin authentications allowed per client address (a token bucket, in-process). */
export interface AdminAuthLimit {
  failuresPerSecond: number;
  failureBurst: number;
  now?: () => number;
}

/**
 * The bucket a client's failures are charged to: its address (the socket's: no forwarding header
 * is trusted), an IPv6 client by its /64, which one host usually holds whole.
 */
export function clientKey(ip: string): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (v4) return v4[1]!;
  if (!isIPv6(ip)) return ip;
  const [head = '', tail = ''] = ip.split('%')[0]!.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/**
 * Who a bearer token is on the admin API: `true` (or the token principal) for the admin token, an
 * admin key's principal, or nothing. Compares hashes in constant time (store/admin-token.ts,
 * admin/keys.ts).
 */
export type AdminAuthenticator = (token: string) => boolean | AdminPrincipal | undefined | Promise<boolean | AdminPrincipal | undefined>;

const principals = new WeakMap<FastifyRequest, AdminPrincipal>();

/** The admin credential that authenticated this request (set by the admin guard). */
export const adminPrincipalOf = (request: FastifyRequest): AdminPrincipal | undefined => principals.get(request);

/**
 * The audit actor of an admin request: `admin` for the admin token, `admin_key:adk_…` for an admin
 * key (its id, never the key). Routes pass it to what they audit.
 */
export function adminActorOf(request: FastifyRequest): string {
  const p = principals.get(request);
  return p ? actorOf(p) : 'admin';
}

/**
 * Admin bearer check, then the role check. The right credential always passes authentication at
 * once; only failures are counted, per client address, and past the budget they are answered
 * `429 rate_limited` with Retry-After instead of 401. An authenticated credential whose role is
 * below what the route needs (admin/roles.ts: one table, default by method) gets `403
 * admin_forbidden` naming the role needed; this runs on `onRequest`, before the body is read.
 */
export function createAdminGuard(
  authenticate: AdminAuthenticator,
  limit: AdminAuthLimit = { failuresPerSecond: defaults.adminAuthFailuresPerSecond, failureBurst: defaults.adminAuthFailureBurst },
) {
  const failures = createMemoryBuckets({ now: limit.now });
  return async function requireAdmin(request: FastifyRequest): Promise<void> {
    const token = bearerOf(request);
    const found = token ? await authenticate(token) : undefined;
    const principal = found === true ? ADMIN_TOKEN_PRINCIPAL : found || undefined;
    if (principal) {
      principals.set(request, principal);
      const needed = requiredRole(request.method, request.routeOptions.url);
      if (!roleAllows(principal.role, needed)) {
        throw new WarrantError('admin_forbidden', `${request.method} ${request.routeOptions.url} needs the admin role ${needed}; this admin key has the role ${principal.role}`, {
          required_role: needed,
          role: principal.role,
        });
      }
      return;
    }
    const refused = failures.take([{ key: clientKey(request.ip), ratePerSecond: limit.failuresPerSecond, burst: limit.failureBurst }]);
    if (refused) {
      throw new WarrantError('rate_limited', 'too many failed admin authentications from this address; wait before trying again', {
        limit: 'admin_auth',
        retry_after: Math.max(1, Math.ceil(refused.waitMs / 1000)),
      });
    }
    throw new WarrantError('admin_unauthenticated', 'send the admin token or an admin key as Authorization: Bearer …');
  };
}
