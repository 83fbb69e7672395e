import { CryptoError, open, rewrap, seal, type KeyRing, type KeyRingSource } from '../crypto/index.ts';
import type { Db } from './db.ts';
import type { KeyLease, KeysRepo } from './keys.ts';
import type { SecretKey, SecretsRepo } from './secrets.ts';

// The additional authenticated data names the record and field, so a ciphertext copied to
// another row or field fails to open.
const aadOf = (k: SecretKey) => `${k.scope}|${k.ref}|${k.field}`;

export interface RotationReport {
  activeKey: string;
  rewrapped: number;
  retired: string[];
  /** Keys that wrap nothing any more but were kept: a running instance may still seal with them. */
  inUse: KeyLease[];
}

export function createVault(deps: { secrets: SecretsRepo; keys: KeysRepo; ring: KeyRingSource; now: () => number }) {
  const { secrets, keys, ring } = deps;

  async function withRing<T>(fn: (r: KeyRing) => T): Promise<T> {
    try {
      return fn(ring.current());
    } catch (err) {
      if (err instanceof CryptoError && err.code === 'unknown_key' && ring.reload) return fn(ring.reload());
      throw err;
    }
  }

  /** One pass over the rows not wrapped by the active key; how many were swapped. */
  async function rewrapAll(r: KeyRing, batchSize: number): Promise<number> {
    let rewrapped = 0;
    for (;;) {
      const page = await secrets.notWrappedBy(r.activeId, batchSize);
      if (!page.length) return rewrapped;
      for (const row of page) {
        const next = rewrap(r, { kekId: row.kek_id, wrappedKey: row.wrapped_key, ciphertext: row.ciphertext }, aadOf(row));
        // false: rewritten meanwhile, and the next page read shows its new key
        if (await secrets.replaceWrap(row, next.kekId, next.wrappedKey)) rewrapped++;
      }
    }
  }

  return {
    async put(key: SecretKey, plaintext: string, trx?: Db): Promise<void> {
      const sealed = seal(ring.current(), plaintext, aadOf(key));
      await secrets.upsert(
        { ...key, kek_id: sealed.kekId, wrapped_key: sealed.wrappedKey, ciphertext: sealed.ciphertext, updated_at: deps.now() },
        trx,
      );
    },

    /**
     * Seals and stores `plaintext` only if nothing is stored under `key` yet (instances starting at
     * once agree on one value: each reads back what won). Whether this call stored it.
     */
    async putIfAbsent(key: SecretKey, plaintext: string, trx?: Db): Promise<boolean> {
      const sealed = seal(ring.current(), plaintext, aadOf(key));
      return secrets.insertIfAbsent(
        { ...key, kek_id: sealed.kekId, wrapped_key: sealed.wrappedKey, ciphertext: sealed.ciphertext, updated_at: deps.now() },
        trx,
      );
    },

    async get(key: SecretKey, trx?: Db): Promise<string | undefined> {
      const row = await secrets.get(key, trx);
      if (!row) return undefined;
      return withRing((r) => open(r, { kekId: row.kek_id, wrappedKey: row.wrapped_key, ciphertext: row.ciphertext }, aadOf(key)));
    },

    /** Every field of one record, opened. */
    async getAll(scope: string, ref: string, trx?: Db): Promise<Record<string, string>> {
      const rows = await secrets.getAll(scope, ref, trx);
      const out: Record<string, string> = {};
      for (const row of rows) {
        out[row.field] = await withRing((r) =>
          open(r, { kekId: row.kek_id, wrappedKey: row.wrapped_key, ciphertext: row.ciphertext }, aadOf(row)),
        );
      }
      return out;
    },

    async delete(key: Partial<SecretKey> & { scope: string; ref: string }, trx?: Db): Promise<void> {
      await secrets.delete(key, trx);
    },

    /**
     * Re-wraps every data key under the active key, a page at a time, while Warrant keeps
     * serving: each row is swapped only if unchanged since it was read (a concurrent write
     * already sealed it under the active key). Keys that no longer wrap anything are retired,
     * unless an instance still holds a lease on sealing with one (`key_usage`): then it is kept
     * and reported as in use. For `waitMs`, leases are looked at again (and stragglers re-wrapped)
     * every `pollMs`, so instances that are switching to the new key get the time to.
     */
    async rotate(opts: { batchSize?: number; waitMs?: number; pollMs?: number } = {}): Promise<RotationReport> {
      const r = ring.reload?.() ?? ring.current();
      const startedAt = deps.now();
      await keys.markActive(r.activeId, startedAt);
      const deadline = Date.now() + (opts.waitMs ?? 0);
      let rewrapped = 0;
      const retired: string[] = [];
      for (;;) {
        rewrapped += await rewrapAll(r, opts.batchSize ?? 500);
        const now = deps.now();
        const inUse = await secrets.countByKek();
        const known = await keys.list();
        const candidates = new Set<string>();
        for (const k of known) if (k.id !== r.activeId && k.status === 'active' && !inUse.get(k.id)) candidates.add(k.id);
        for (const id of r.ids) if (id !== r.activeId && !inUse.get(id) && !retired.includes(id)) candidates.add(id);
        const leases = await keys.leases([...candidates], now);
        for (const id of candidates) {
          if (leases.some((l) => l.key === id)) continue;
          if (!known.some((k) => k.id === id)) await keys.markActive(id, now);
          await keys.retire(id, now);
          retired.push(id);
        }
        if (!leases.length || Date.now() >= deadline) return { activeKey: r.activeId, rewrapped, retired, inUse: leases };
        await new Promise((done) => setTimeout(done, Math.min(opts.pollMs ?? 500, Math.max(0, deadline - Date.now()))));
      }
    },
  };
}

export type Vault = ReturnType<typeof createVault>;
