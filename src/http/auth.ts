import type { FastifyRequest } from 'fastify';
import { hashSecret, safeEqual } from '../crypto/index.ts';
import { WarrantError } from '../errors/index.ts';

/** The token of an `Authorization: Bearer …` header (RFC 6750 §2.1), or undefined. */
export function bearerFrom(header: string | undefined): string | undefined {
  const m = header ? /^Bearer[ ]+([\x21-\x7e]+)\s*$/i.exec(header) : null;
  return m?.[1];
}

export const bearerOf = (request: FastifyRequest): string | undefined => bearerFrom(request.headers.authorization);

/** Admin bearer check against the stored hash, in constant time. */
export function createAdminGuard(adminTokenHash: () => string) {
  return async function requireAdmin(request: FastifyRequest): Promise<void> {
    const token = bearerOf(request);
    if (!token || !safeEqual(hashSecret(token), adminTokenHash())) {
      throw new WarrantError('admin_unauthenticated', 'send the admin token as Authorization: Bearer …');
    }
  };
}
