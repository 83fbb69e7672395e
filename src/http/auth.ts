import type { FastifyRequest } from 'fastify';
import { hashSecret, safeEqual } from '../crypto/index.ts';
import { WarrantError } from '../errors/index.ts';

export function bearerOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const m = /^Bearer[ ]+([\x21-\x7e]+)\s*$/i.exec(header);
  return m?.[1];
}

/** Admin bearer check against the stored hash, in constant time. */
export function createAdminGuard(adminTokenHash: () => string) {
  return async function requireAdmin(request: FastifyRequest): Promise<void> {
    const token = bearerOf(request);
    if (!token || !safeEqual(hashSecret(token), adminTokenHash())) {
      throw new WarrantError('admin_unauthenticated', 'send the admin token as Authorization: Bearer …');
    }
  };
}
