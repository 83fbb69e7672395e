import { randomInt } from 'node:crypto';
import { hashSecret } from '../crypto/index.ts';
import { WarrantError, invalidRequest } from '../errors/index.ts';
import type { Store } from '../store/index.ts';
import { authzTables } from './tables.ts';

// Owner login codes: until the dashboard brings owner sign-in (issue 12), the consent page's login
// step asks for the owner id and a one-time code an admin made with
// `POST /v1/owners/{owner}/login-codes`. Only a hash is stored, bound to the owner; a code is
// single use (a conditional update, so two instances never both accept it) and short-lived.

const KIND = 'OwnerLoginCode';
/** Crockford base32: no I, L, O, U; what a person types back without ambiguity. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const LENGTH = 10; // 50 bits

export const normalizeCode = (code: string) => code.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
const hashOf = (owner: string, code: string) => hashSecret(`${KIND}:${owner}:${normalizeCode(code)}`);

export interface LoginCodesDeps {
  store: Pick<Store, 'db' | 'owners'>;
  now: () => number;
  ttlSeconds: number;
}

export function createLoginCodes(deps: LoginCodesDeps) {
  const db = authzTables(deps.store.db);
  return {
    /** A new code for `owner` (created as an owner when first named); refused for an offboarded owner. */
    async issue(owner: string): Promise<{ owner: string; code: string; expires_at: string }> {
      if (!owner.trim() || owner.length > 320) throw invalidRequest('owner', 'must be 1 to 320 characters');
      const found = await deps.store.owners.get(owner);
      if (found?.status === 'offboarded') throw new WarrantError('conflict', `owner ${owner} is offboarded`, { owner });
      const now = deps.now();
      await deps.store.owners.ensure(owner, now);
      let raw = '';
      for (let i = 0; i < LENGTH; i++) raw += ALPHABET[randomInt(ALPHABET.length)];
      const code = `${raw.slice(0, 5)}-${raw.slice(5)}`;
      const expiresAt = now + deps.ttlSeconds * 1000;
      await db
        .insertInto('authz_models')
        .values({ kind: KIND, key: hashOf(owner, code), grant_id: null, uid: null, user_code: null, generation: null, expires_at: expiresAt, consumed_at: null, created_at: now })
        .execute();
      return { owner, code, expires_at: new Date(expiresAt).toISOString() };
    },

    /** Accepts the code once, before it expires; false for anything else (wrong, used, expired, other owner). */
    async redeem(owner: string, code: string): Promise<boolean> {
      if (!owner || !code || code.length > 64) return false;
      const now = deps.now();
      const r = await db
        .updateTable('authz_models')
        .set({ consumed_at: now })
        .where('kind', '=', KIND)
        .where('key', '=', hashOf(owner, code))
        .where('consumed_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
  };
}

export type LoginCodes = ReturnType<typeof createLoginCodes>;
