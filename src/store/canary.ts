import { CryptoError, open, seal, type KeyRing, type KeyRingSource, type Sealed } from '../crypto/index.ts';
import type { Db } from './db.ts';
import type { SettingsRepo } from './settings.ts';
import type { Vault } from './vault.ts';

// A value sealed with the key ring when the store is first opened. Opening it at every start
// proves the ring in hand is the one that sealed the store, before any traffic is served: a
// wrong WARRANT_MASTER_KEY would otherwise surface later as a 500 on a refresh or a webhook.

const NAME = 'key_canary';
const AAD = `settings|${NAME}|value`;
const PLAINTEXT = 'warrant key canary v1';

/** sysexits.h EX_CONFIG: the configuration (here, the key ring) is wrong. */
export const EX_CONFIG = 78;

/** The key ring cannot open this store. The message names key ids only, never key material. */
export class KeyCheckError extends Error {
  override name = 'KeyCheckError';
  readonly exitCode = EX_CONFIG;
  constructor(
    message: string,
    /** The key ids that sealed the store's secrets and are missing from the ring. */
    readonly missingKeyIds: string[],
  ) {
    super(message);
  }
}

function parse(value: string): Sealed | undefined {
  try {
    const v = JSON.parse(value) as Partial<Sealed>;
    if (typeof v.kekId === 'string' && typeof v.wrappedKey === 'string' && typeof v.ciphertext === 'string') return v as Sealed;
  } catch {
    // fall through: an unreadable canary is reported like a wrong key
  }
  return undefined;
}

const held = (ring: KeyRing) => ring.ids.join(', ');

function mismatch(ring: KeyRing, kekIds: string[]): KeyCheckError {
  const missing = kekIds.filter((id) => !ring.ids.includes(id));
  const named = kekIds.join(', ');
  const message = missing.length
    ? `key check failed: this store was sealed with key-encryption key ${missing.join(', ')}, which the key ring ` +
      `(WARRANT_MASTER_KEY, or the key file in the data dir) does not hold; it holds ${held(ring)}. ` +
      `Start with a key ring that includes ${missing.join(', ')} (new keys go first: id:key,${missing[0]}:key).`
    : `key check failed: key ${named} in the key ring is not the key that sealed this store ` +
      '(same id, different key). Start with the key this store was sealed with.';
  return new KeyCheckError(message, missing.length ? missing : kekIds);
}

export interface KeyCanaryDeps {
  db: Db;
  settings: SettingsRepo;
  vault: Vault;
  ring: KeyRingSource;
  now: () => number;
}

export function createKeyCanary(deps: KeyCanaryDeps) {
  const { db, settings, vault, ring, now } = deps;

  function opens(sealed: Sealed): boolean {
    const tryWith = (r: KeyRing) => open(r, sealed, AAD) === PLAINTEXT;
    try {
      return tryWith(ring.current());
    } catch (err) {
      if (!(err instanceof CryptoError)) throw err;
      if (err.code === 'unknown_key' && ring.reload) {
        try {
          return tryWith(ring.reload());
        } catch (again) {
          if (again instanceof CryptoError) return false;
          throw again;
        }
      }
      return false;
    }
  }

  /**
   * A store without a canary (created before the key check existed): one stored secret per key
   * id must open with the ring, or the ring is wrong. An empty store passes.
   */
  async function checkSecrets(): Promise<void> {
    const kekIds = (await db.selectFrom('secrets').select('kek_id').distinct().execute()).map((r) => r.kek_id);
    if (!kekIds.length) return;
    for (const kekId of kekIds) {
      const row = await db.selectFrom('secrets').select(['scope', 'ref', 'field']).where('kek_id', '=', kekId).limit(1).executeTakeFirst();
      if (!row) continue;
      try {
        await vault.get(row);
        return; // at least one secret opens: this ring belongs to this store
      } catch (err) {
        if (!(err instanceof CryptoError)) throw err;
      }
    }
    throw mismatch(ring.current(), kekIds);
  }

  const sealNow = () => JSON.stringify(seal(ring.current(), PLAINTEXT, AAD));

  return {
    /**
     * Opens the canary, or seals one on a store that has none. Throws KeyCheckError (exit 78)
     * when the ring cannot open what this store holds.
     */
    async check(): Promise<void> {
      let stored = await settings.get(NAME);
      if (stored === undefined) {
        await checkSecrets();
        if (await settings.setIfAbsent(NAME, sealNow(), now())) return;
        stored = (await settings.get(NAME))!; // another instance sealed it first
      }
      const sealed = parse(stored);
      if (!sealed) throw new KeyCheckError('key check failed: the stored key canary is unreadable (tampered with?)', []);
      if (!opens(sealed)) throw mismatch(ring.current(), [sealed.kekId]);
    },

    /** Seals the canary again under the active key (key rotation), so retiring old keys keeps it readable. */
    async reseal(): Promise<void> {
      await settings.set(NAME, sealNow(), now());
    },

    /** The key id that wraps the canary, or undefined when none is stored yet. */
    async sealedWith(): Promise<string | undefined> {
      const stored = await settings.get(NAME);
      return stored === undefined ? undefined : parse(stored)?.kekId;
    },
  };
}

export type KeyCanary = ReturnType<typeof createKeyCanary>;
