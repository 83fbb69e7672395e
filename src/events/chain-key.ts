import { createSecretKey, randomBytes } from 'node:crypto';
import type { Db, Dialect, SecretKey, Vault } from '../store/index.ts';
import { ensureSeal, lockChain } from './audit.ts';
import { GENESIS, type ChainKey } from './chain.ts';

// The audit chain's HMAC key lives in the vault, sealed with the key ring like any other secret
// (so `warrant keys rotate` re-wraps it), together with the seq keying starts at and the head it
// follows: the AEAD binds the three, so someone who can write to the database cannot move the
// boundary to declare keyed entries unkeyed. It is made once per store and never overwritten.

export const CHAIN_KEY_SECRET: SecretKey = { scope: 'audit', ref: 'chain', field: 'key' };

interface SealedChainKey {
  v: 1;
  key: string;
  from_seq: number;
  after_hash: string;
}

function parse(value: string): ChainKey {
  let v: Partial<SealedChainKey> | undefined;
  try {
    v = JSON.parse(value) as Partial<SealedChainKey>;
  } catch {
    // reported below, without the value
  }
  const key = typeof v?.key === 'string' ? Buffer.from(v.key, 'base64') : undefined;
  if (v?.v !== 1 || key?.length !== 32 || !Number.isSafeInteger(v.from_seq) || typeof v.after_hash !== 'string') {
    throw new Error(`the audit chain key (vault ${CHAIN_KEY_SECRET.scope}/${CHAIN_KEY_SECRET.ref}) is not one this Warrant can read`);
  }
  return { key: createSecretKey(key), fromSeq: v.from_seq!, afterHash: v.after_hash };
}

/**
 * The store's chain key, made on the first start that finds none. Instances starting at once
 * agree on one: the boundary is read under the chain lock (no append can slip between reading the
 * head and sealing it), the insert never overwrites, and every instance reads back what won.
 * `created` is true for the one instance whose key was stored.
 */
export async function loadChainKey(deps: { vault: Vault; db: Db; dialect: Dialect }): Promise<{ chain: ChainKey; created: boolean }> {
  const { vault, db, dialect } = deps;
  const existing = await vault.get(CHAIN_KEY_SECRET);
  if (existing !== undefined) return { chain: parse(existing), created: false };
  const created = await db.transaction().execute(async (trx) => {
    await lockChain(trx, dialect);
    const head = await trx.selectFrom('audit_events').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
    const sealed: SealedChainKey = {
      v: 1,
      key: randomBytes(32).toString('base64'),
      from_seq: head ? Number(head.seq) + 1 : 1,
      after_hash: head?.hash ?? GENESIS,
    };
    const stored = await vault.putIfAbsent(CHAIN_KEY_SECRET, JSON.stringify(sealed), trx);
    // A seal made under a key that is gone cannot be checked: the new key seals the head anew.
    if (stored) await ensureSeal(trx, dialect, parse(JSON.stringify(sealed)), true);
    return stored;
  });
  const stored = await vault.get(CHAIN_KEY_SECRET);
  if (stored === undefined) throw new Error('the audit chain key could not be stored');
  const chain = parse(stored);
  // A store keyed before the head was sealed gets its seal now (audit.ts `ensureSeal`).
  if (!created) await db.transaction().execute((trx) => ensureSeal(trx, dialect, chain));
  return { chain, created };
}

/**
 * The store's chain key, or undefined where none was made yet; never writes (for verifiers that
 * read the store without being a Warrant: `warrant audit verify --store`).
 */
export async function readChainKey(vault: Vault): Promise<ChainKey | undefined> {
  const existing = await vault.get(CHAIN_KEY_SECRET);
  return existing === undefined ? undefined : parse(existing);
}
