import type { Adapter, AdapterConstructor, AdapterPayload } from 'oidc-provider';
import { hashSecret } from '../crypto/index.ts';
import type { Store } from '../store/index.ts';
import { authzTables } from './tables.ts';

// oidc-provider's state in Warrant's store, so every instance on one database shares it (codes
// issued by one are redeemed at another, a refresh token rotated here is seen there).
//  - `authz_models` holds what oidc-provider looks rows up by (grant, uid, user code, expiry);
//  - the payload is sealed by the vault in `secrets` (scope `authz`, ref `{kind}:{key}`), so
//    `warrant keys rotate` re-wraps it like every other secret;
//  - where the id is a bearer secret, the key is its hash: a read of the database gives no token.

/** Models whose id is not a secret (it appears in payloads and URLs): stored as is. */
const plainIdKinds = new Set(['Client', 'Grant', 'ReplayDetection']);

const SCOPE = 'authz';

export const keyOf = (kind: string, id: string): string => (plainIdKinds.has(kind) ? id : hashSecret(`${kind}:${id}`));
const refOf = (kind: string, key: string) => `${kind}:${key}`;

export interface AuthzAdapterDeps {
  store: Pick<Store, 'db' | 'vault' | 'transaction'>;
  now: () => number;
  /**
   * A dynamically registered client unused this long (ms) expires: its row's `expires_at` is its
   * last use plus this, pushed forward on use (`touchClient`) and swept like any expired row.
   */
  clientUnusedMs?: number;
}

/** Clients that never expire for lack of use: those an admin registered (headless.ts). */
const expiresUnused = (payload: AdapterPayload) => typeof (payload as Record<string, unknown>).warrant_owner !== 'string';

export function createStoreAdapter(deps: AuthzAdapterDeps): AdapterConstructor {
  const { store, now } = deps;
  const db = authzTables(store.db);

  async function read(kind: string, where: (q: ReturnType<typeof select>) => ReturnType<typeof select>): Promise<AdapterPayload | undefined> {
    const row = await where(select(kind)).executeTakeFirst();
    if (!row) return undefined;
    // A client unused past its expiry is gone at once, not only when the sweep deletes it.
    if (kind === 'Client' && row.expires_at !== null && Number(row.expires_at) <= now()) return undefined;
    // Expired rows are oidc-provider's to judge (it checks `exp`); the sweep drops them later.
    const sealed = await store.vault.get({ scope: SCOPE, ref: refOf(kind, row.key), field: 'payload' });
    if (sealed === undefined) return undefined;
    const payload = JSON.parse(sealed) as AdapterPayload;
    if (row.consumed_at !== null && !(kind === 'RefreshToken' && (await withinRotationGrace(row)))) {
      payload.consumed = Math.floor(Number(row.consumed_at) / 1000);
    }
    return payload;
  }

  function select(kind: string) {
    return db.selectFrom('authz_models').select(['key', 'grant_id', 'generation', 'consumed_at', 'expires_at']).where('kind', '=', kind);
  }

  /**
   * Rotation with a grace: a rotated refresh token keeps working until a token of a later
   * generation in its family has been used. Two sessions refreshing one token at once both get
   * a successor and both keep working; a reuse after a successor was used is reuse (RFC 9700
   * §4.14.2), and oidc-provider then revokes the whole grant.
   */
  async function withinRotationGrace(row: { grant_id: string | null; generation: number | null }): Promise<boolean> {
    if (row.grant_id === null) return false;
    const later = await db
      .selectFrom('authz_models')
      .select('key')
      .where('kind', '=', 'RefreshToken')
      .where('grant_id', '=', row.grant_id)
      .where('generation', '>', row.generation ?? 0)
      .where('consumed_at', 'is not', null)
      .executeTakeFirst();
    return later === undefined;
  }

  async function removeWhere(kind: string | undefined, column: 'key' | 'grant_id', value: string): Promise<void> {
    await store.transaction(async (trx) => {
      const t = authzTables(trx);
      let q = t.selectFrom('authz_models').select(['kind', 'key']).where(column, '=', value);
      if (kind) q = q.where('kind', '=', kind);
      const rows = await q.execute();
      for (const r of rows) await store.vault.delete({ scope: SCOPE, ref: refOf(r.kind, r.key) }, trx);
      let d = t.deleteFrom('authz_models').where(column, '=', value);
      if (kind) d = d.where('kind', '=', kind);
      await d.execute();
    });
  }

  return class StoreAdapter implements Adapter {
    constructor(private readonly kind: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      const { kind } = this;
      const key = keyOf(kind, id);
      const at = now();
      const row = {
        grant_id: payload.grantId ?? null,
        uid: payload.uid ?? null,
        user_code: payload.userCode ? hashSecret(`UserCode:${payload.userCode}`) : null,
        expires_at:
          typeof expiresIn === 'number'
            ? at + expiresIn * 1000
            : kind === 'Client' && deps.clientUnusedMs && expiresUnused(payload)
              ? at + deps.clientUnusedMs
              : null,
        generation: kind === 'RefreshToken' ? (typeof payload.rotations === 'number' ? payload.rotations : 0) : null,
      };
      await store.transaction(async (trx) => {
        await authzTables(trx)
          .insertInto('authz_models')
          .values({ kind, key, ...row, consumed_at: null, created_at: at })
          .onConflict((oc) => oc.columns(['kind', 'key']).doUpdateSet(row))
          .execute();
        await store.vault.put({ scope: SCOPE, ref: refOf(kind, key), field: 'payload' }, JSON.stringify(payload), trx);
      });
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      return read(this.kind, (q) => q.where('key', '=', keyOf(this.kind, id)));
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return read(this.kind, (q) => q.where('uid', '=', uid));
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return read(this.kind, (q) => q.where('user_code', '=', hashSecret(`UserCode:${userCode}`)));
    }

    async consume(id: string): Promise<void> {
      // The first consumption counts: the grace of a rotated token starts from it.
      await db
        .updateTable('authz_models')
        .set({ consumed_at: now() })
        .where('kind', '=', this.kind)
        .where('key', '=', keyOf(this.kind, id))
        .where('consumed_at', 'is', null)
        .execute();
    }

    async destroy(id: string): Promise<void> {
      await removeWhere(this.kind, 'key', keyOf(this.kind, id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await removeWhere(this.kind, 'grant_id', grantId);
    }
  };
}

/**
 * Records that a dynamically registered client was used (a token issued to it): its expiry moves
 * to `now + unusedMs`. Written at most once a day per client (a conditional update), so a busy
 * client costs no write per token.
 */
export async function touchClient(store: Pick<Store, 'db'>, clientId: string, now: number, unusedMs: number): Promise<void> {
  await authzTables(store.db)
    .updateTable('authz_models')
    .set({ expires_at: now + unusedMs })
    .where('kind', '=', 'Client')
    .where('key', '=', clientId)
    .where('expires_at', 'is not', null)
    .where('expires_at', '<', now + unusedMs - 86_400_000)
    .execute();
}

/**
 * Deletes rows expired more than `retentionMs` ago (kept a while so "expired" differs from
 * "unknown"), `batch` at a time; how many went. Safe to run on every instance at once.
 */
export async function sweepExpired(store: AuthzAdapterDeps['store'], now: number, opts: { retentionMs: number; batch: number }): Promise<number> {
  const db = authzTables(store.db);
  const rows = await db
    .selectFrom('authz_models')
    .select(['kind', 'key'])
    .where('expires_at', 'is not', null)
    .where('expires_at', '<', now - opts.retentionMs)
    .limit(opts.batch)
    .execute();
  if (!rows.length) return 0;
  await store.transaction(async (trx) => {
    for (const r of rows) {
      await store.vault.delete({ scope: SCOPE, ref: refOf(r.kind, r.key) }, trx);
      await authzTables(trx).deleteFrom('authz_models').where('kind', '=', r.kind).where('key', '=', r.key).execute();
    }
  });
  return rows.length;
}
