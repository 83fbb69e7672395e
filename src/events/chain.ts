import { createHash, createHmac, hkdfSync, randomUUID, timingSafeEqual, type KeyObject } from 'node:crypto';

// The audit log's hash chain, shared by the main thread and the embedded audit writer thread:
// each entry's hash covers its content and the previous entry's hash, so an edited, removed or
// reordered entry breaks every hash after it. From `fromSeq` on, the hash is an HMAC-SHA256 under
// the chain key (kept sealed in the vault): someone who can write to the database but does not
// hold the key can no longer rewrite an entry and recompute the rest of the chain. Entries before
// it were written by a Warrant that had no key and stay plain SHA-256.

export const GENESIS = '0'.repeat(64);

export interface ChainInput {
  type: string;
  actor: string;
  subject?: string;
  data?: Record<string, unknown>;
}

export interface ChainRow {
  id: string;
  at: number;
  type: string;
  actor: string;
  subject: string | null;
  /** Canonical JSON (sorted keys): hashed exactly as stored. */
  data: string;
  prev_hash: string;
  hash: string;
}

/** The chain key and where keying began: sealed together, so the boundary cannot be moved without the key ring. */
export interface ChainKey {
  /** HMAC-SHA256 key (a KeyObject: a stray log line shows no key material). */
  key: KeyObject;
  /** The first seq hashed with the key. */
  fromSeq: number;
  /** The chain head when the key was made: the first keyed entry follows it. */
  afterHash: string;
}

type Hashed = Pick<ChainRow, 'id' | 'at' | 'type' | 'actor' | 'subject' | 'data'>;

// Hashed text: the output must stay byte for byte what the chain has always hashed, including
// the odd cases (an array hole or a function in an array gives an empty item, in an object `undefined`).
// Written as loops because it runs for every audit entry.
export function canonical(value: unknown): string {
  if (typeof value !== 'object' || value === null) return JSON.stringify(value ?? null);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      if (i in value) out += (canonical(value[i]) as string | undefined) ?? '';
    }
    return `${out}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    if (obj[k] === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += `${JSON.stringify(k)}:${canonical(obj[k])}`;
  }
  return `${out}}`;
}

const material = (prev: string, e: Hashed) => JSON.stringify([prev, e.id, e.at, e.type, e.actor, e.subject, e.data]);

/** The unkeyed hash of entries written before the chain had a key. */
export function hashOf(prev: string, e: Hashed): string {
  return createHash('sha256').update(material(prev, e)).digest('hex');
}

/** The keyed hash: HMAC-SHA256 (RFC 2104) under the chain key. */
export function macOf(key: KeyObject, prev: string, e: Hashed): string {
  return createHmac('sha256', key).update(material(prev, e)).digest('hex');
}

/** Does `e.hash` hold for this entry after `prev`, keyed or not by its position? */
export function entryHolds(chain: ChainKey | undefined, seq: number, prev: string, e: Hashed & { hash: string }): boolean {
  const expected = chain && seq >= chain.fromSeq ? macOf(chain.key, prev, e) : hashOf(prev, e);
  const a = Buffer.from(expected);
  const b = Buffer.from(e.hash);
  return a.length === b.length && timingSafeEqual(a, b);
}

// NUL and unpaired surrogates: PostgreSQL text refuses the first and its JSON the second.
const UNSTORABLE = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * A text field as every store can hold it, U+FFFD in place of what it cannot. The fields come from
 * requests (a connection id from a URL may decode to NUL); one entry that cannot be stored would
 * stop every batch behind it, and with them the proxy. The hash covers the stored text.
 */
export const storable = (s: string): string => (/[\0\uD800-\uDFFF]/.test(s) ? s.replace(UNSTORABLE, '\uFFFD') : s);

/**
 * The rows that extend a chain whose head hash is `prev`, in order; keyed when `key` is given
 * (every entry a keyed instance appends lies past the boundary: it was set above the head).
 */
export function chainRows(prev: string, inputs: ChainInput[], now: () => number, key?: KeyObject): ChainRow[] {
  const rows: ChainRow[] = [];
  for (const input of inputs) {
    const row: ChainRow = {
      id: `evt_${randomUUID().replaceAll('-', '')}`,
      at: now(),
      type: storable(input.type),
      actor: storable(input.actor),
      subject: input.subject == null ? null : storable(input.subject),
      data: canonical(input.data ?? {}),
      prev_hash: prev,
      hash: '',
    };
    row.hash = key ? macOf(key, prev, row) : hashOf(prev, row);
    prev = row.hash;
    rows.push(row);
  }
  return rows;
}

/** A key derived from the chain key for one purpose (HKDF-SHA256, RFC 5869; `info` names the purpose). */
export function derivedKey(chainKey: KeyObject, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', chainKey.export(), Buffer.alloc(0), info, 32));
}

const sealKeys = new WeakMap<KeyObject, Buffer>();

/**
 * The sealed head: an HMAC over the newest entry's seq, id and hash, rewritten with every append
 * in its transaction (table `audit_seal`). The chain shows an entry edited, removed or moved
 * anywhere but at its end; the seal shows the end cut off (the entry it names is gone or differs).
 */
export function sealOf(chainKey: KeyObject, seq: number, id: string, hash: string): string {
  let key = sealKeys.get(chainKey);
  if (!key) sealKeys.set(chainKey, (key = derivedKey(chainKey, 'warrant audit head seal')));
  return createHmac('sha256', key).update(JSON.stringify([seq, id, hash])).digest('hex');
}

export function sealHolds(chainKey: KeyObject, seal: { seq: number; event_id: string; hash: string; mac: string }): boolean {
  const a = Buffer.from(sealOf(chainKey, seal.seq, seal.event_id, seal.hash));
  const b = Buffer.from(seal.mac);
  return a.length === b.length && timingSafeEqual(a, b);
}
