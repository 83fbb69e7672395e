import type { FastifyRequest } from 'fastify';
import { isIPv6 } from 'node:net';
import { defaults } from '../config/index.ts';
import { WarrantError } from '../errors/index.ts';
import { createMemoryBuckets } from '../limits/index.ts';

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
 * Admin bearer check; `verify` compares hashes in constant time (see store/admin-token.ts). The
 * right token always passes at once; only failures are counted, per client address, and past the
 * budget they are answered `429 rate_limited` with Retry-After instead of 401.
 */
export function createAdminGuard(
  verify: (token: string) => boolean | Promise<boolean>,
  limit: AdminAuthLimit = { failuresPerSecond: defaults.adminAuthFailuresPerSecond, failureBurst: defaults.adminAuthFailureBurst },
) {
  const failures = createMemoryBuckets({ now: limit.now });
  return async function requireAdmin(request: FastifyRequest): Promise<void> {
    const token = bearerOf(request);
    if (token && (await verify(token))) return;
    const refused = failures.take([{ key: clientKey(request.ip), ratePerSecond: limit.failuresPerSecond, burst: limit.failureBurst }]);
    if (refused) {
      throw new WarrantError('rate_limited', 'too many failed admin authentications from this address; wait before trying again', {
        limit: 'admin_auth',
        retry_after: Math.max(1, Math.ceil(refused.waitMs / 1000)),
      });
    }
    throw new WarrantError('admin_unauthenticated', 'send the admin token as Authorization: Bearer …');
  };
}
