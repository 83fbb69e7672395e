import { Worker } from 'node:worker_threads';
import type { KeyObject } from 'node:crypto';
import type pg from 'pg';
import { GENESIS, chainRows, entryHolds, sealHolds, sealOf, type ChainKey, type ChainRow } from './chain.ts';
import { writeOutbox } from './outbox.ts';
import { exportPage, type ExportPage, type ExportQuery } from './export.ts';
import { CHAIN_LOCK, createPgAuditWriter } from './audit-pg.ts';
import { sql } from 'kysely';
import type { Db, Dialect, AuditEventRow } from '../store/index.ts';

// A hash chain: each entry's hash covers its content and the previous entry's hash, so an
// edited, removed or reordered entry breaks every hash after it. `verify()` walks the chain; from
// the chain key's boundary on, hashes are HMACs under the key (chain.ts, chain-key.ts), and
// `head()` is what an operator anchors outside Warrant (docs/audit.md).
// Each append also queues, in its own transaction, the webhook deliveries its entries cause
// (outbox.ts): an alert commits with the event or not at all.

export interface AuditInput {
  type: string;
  /** Who did it: `admin`, `agent:agt_…`, `system`, `scheduler`. */
  actor: string;
  /** What it is about: `connection:con_…`, `agent:agt_…`. */
  subject?: string;
  /** Never a secret: callers pass ids, statuses, scopes, counts. */
  data?: Record<string, unknown>;
}

export interface AuditEntry extends Required<Omit<AuditInput, 'subject'>> {
  seq: number;
  id: string;
  at: number;
  subject: string | null;
  hash: string;
  prev_hash: string;
}

/**
 * Serializes writers of the chain head. Keyed by schema too: each Warrant schema on a shared server
 * has a chain of its own. SQLite needs nothing: every transaction begins IMMEDIATE.
 */
export async function lockChain(trx: Db, dialect: Dialect): Promise<void> {
  if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(${CHAIN_LOCK}, hashtext(current_schema()))`.execute(trx);
}

/**
 * Why verification stopped at `first_bad` (docs/audit.md, "Verifying"):
 * - `hash_mismatch`: the entry's content does not hash to its `hash` (it was edited);
 * - `chain_break`: its `prev_hash` is not the previous entry's hash (an entry before it was
 *   removed or inserted, or entries were reordered);
 * - `unkeyed_rewritten`: the unkeyed part before the key's boundary no longer ends where the key says;
 * - `truncated`: the sealed head names this entry and it is gone or differs (the newest entries were removed);
 * - `seal_invalid`: the sealed head's MAC does not hold (it was edited);
 * - `seal_missing`: keyed entries but no sealed head (it was deleted).
 */
export type AuditBreak = 'hash_mismatch' | 'chain_break' | 'unkeyed_rewritten' | 'truncated' | 'seal_invalid' | 'seal_missing';

export interface AuditVerification {
  ok: boolean;
  entries: number;
  first_bad?: number;
  /** The id of the entry at `first_bad` (as it is now, or as the sealed head names it). */
  first_bad_id?: string;
  reason?: AuditBreak;
  /** The first seq keyed with the chain key (entries before it are unkeyed SHA-256). */
  keyed_from?: number;
}

export interface AuditHead {
  /** 0 while the chain is empty. */
  seq: number;
  hash: string;
  at: number | null;
  /** The head entry's hash is an HMAC under the chain key, and it holds. */
  keyed: boolean;
  keyed_from?: number;
}

export interface AuditQuery {
  type?: string;
  subject?: string;
  actor?: string;
  afterSeq?: number;
  /** Only entries before this seq (paging back through a newest-first list). */
  beforeSeq?: number;
  /** Only entries at or after this time (epoch ms). */
  sinceMs?: number;
  /** `desc`: newest first (the dashboard's timeline); default `asc`. */
  order?: 'asc' | 'desc';
  limit?: number;
}

export function createAuditLog(deps: {
  db: Db;
  dialect: Dialect;
  now: () => number;
  sqliteFile?: string;
  /** The chain key (loadChainKey). Without it (tests, tools) entries are unkeyed, as before keying. */
  chain?: ChainKey;
  /**
   * PostgreSQL: a pool of the audit writer's own (store.sidePool). Appends outside a caller's
   * transaction then go through it, one round trip per batch (audit-pg.ts), each statement cancelled
   * past `writeTimeoutMs`. Without it they run in a transaction on `db`, as before.
   */
  pgPool?: pg.Pool;
  /** statement_timeout of the writer's statements (default 5000). */
  writeTimeoutMs?: number;
  /** Called with each statement the PostgreSQL writer runs (as the store's own hook: bench/proxy.ts --count-queries). */
  onQuery?: (sql: string) => void;
}) {
  const { db, dialect, chain } = deps;

  const entriesOf = (rows: (ChainRow & { seq: number })[], inputs: AuditInput[]): AuditEntry[] =>
    rows.map((r, i) => ({ ...r, data: inputs[i]!.data ?? {} }));

  async function appendRows(trx: Db, inputs: AuditInput[]): Promise<(ChainRow & { seq: number })[]> {
    await lockChain(trx, dialect);
    const last = await trx.selectFrom('audit_events').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
    const rows = chainRows(last?.hash ?? GENESIS, inputs, deps.now, chain?.key);
    let written: (ChainRow & { seq: number })[];
    if (dialect === 'postgres') {
      // Explicit seqs, head + 1 on, as the one-statement writer gives them (audit-pg.ts): its
      // primary-key conflict is how it learns that the head moved. The sequence follows.
      const from = Number(last?.seq ?? 0) + 1;
      written = rows.map((r, i) => ({ ...r, seq: from + i }));
      await trx.insertInto('audit_events').values(written).execute();
      await sql`select setval(pg_get_serial_sequence('audit_events', 'seq'), ${written.at(-1)!.seq})`.execute(trx);
    } else {
      // One multi-row statement; RETURNING gives the seqs in insertion order.
      const inserted = await trx.insertInto('audit_events').values(rows).returning('seq').execute();
      written = rows.map((r, i) => ({ ...r, seq: Number(inserted[i]!.seq) }));
    }
    const newest = written.at(-1)!;
    if (chain) await writeSeal(trx, chain, { seq: newest.seq, id: newest.id, hash: newest.hash });
    await writeOutbox(trx, rows, deps.now());
    return written;
  }
  const appendIn = async (trx: Db, inputs: AuditInput[]) => entriesOf(await appendRows(trx, inputs), inputs);

  const writer = deps.sqliteFile ? createWriterThread(deps.sqliteFile, chain?.key) : undefined;
  const pgWriter =
    dialect === 'postgres' && deps.pgPool
      ? createPgAuditWriter({ pool: deps.pgPool, chain, now: deps.now, statementTimeoutMs: deps.writeTimeoutMs ?? 5_000, appendIn: appendRows, onQuery: deps.onQuery })
      : undefined;

  /** After a walk that held: does the sealed head name an entry that is still there, unchanged? */
  async function checkSeal(key: ChainKey, last: { seq: number; id: string } | undefined): Promise<{ at: { seq: number; id?: string }; reason: AuditBreak } | undefined> {
    const seal = await db.selectFrom('audit_seal').selectAll().where('id', '=', SEAL_ID).executeTakeFirst();
    if (!seal) return last && last.seq >= key.fromSeq ? { at: last, reason: 'seal_missing' } : undefined;
    const sealed = { seq: Number(seal.seq), event_id: seal.event_id, hash: seal.hash, mac: seal.mac };
    if (!sealHolds(key.key, sealed)) return { at: { seq: sealed.seq, id: sealed.event_id }, reason: 'seal_invalid' };
    const row = await db.selectFrom('audit_events').select(['id', 'hash']).where('seq', '=', sealed.seq).executeTakeFirst();
    if (row?.id !== sealed.event_id || row.hash !== sealed.hash) return { at: { seq: sealed.seq, id: sealed.event_id }, reason: 'truncated' };
    return undefined;
  }

  return {
    /**
     * Appends entries in order, with the webhook deliveries they cause. Inside `trx` they commit
     * with the caller's change; without it they get a transaction of their own. Appends are
     * serialized (the chain has one head).
     */
    async append(inputs: AuditInput | AuditInput[], trx?: Db): Promise<AuditEntry[]> {
      const list = Array.isArray(inputs) ? inputs : [inputs];
      if (!list.length) return [];
      if (trx) return appendIn(trx, list);
      if (writer) return entriesOf(await writer.append(list), list);
      if (pgWriter) return entriesOf(await pgWriter.append(list), list);
      return db.transaction().execute((t) => appendIn(t, list));
    },

    async query(q: AuditQuery = {}): Promise<AuditEntry[]> {
      let query = db.selectFrom('audit_events').selectAll();
      if (q.type) query = query.where('type', '=', q.type);
      if (q.subject) query = query.where('subject', '=', q.subject);
      if (q.actor) query = query.where('actor', '=', q.actor);
      if (q.afterSeq !== undefined) query = query.where('seq', '>', q.afterSeq);
      if (q.beforeSeq !== undefined) query = query.where('seq', '<', q.beforeSeq);
      if (q.sinceMs !== undefined) query = query.where('at', '>=', q.sinceMs);
      const rows = await query.orderBy('seq', q.order ?? 'asc').limit(Math.min(q.limit ?? 100, 1000)).execute();
      return rows.map(toEntry);
    },

    /** One page for exporters, from a cursor (export.ts; GET /v1/audit/export). */
    exportPage: (q: ExportQuery): Promise<ExportPage> => exportPage(db, q),

    /** Stops the embedded writer thread or the PostgreSQL writer's pool (pending appends finish first). */
    async close(): Promise<void> {
      await writer?.close();
      await pgWriter?.close();
    },

    /**
     * Walks the chain from the start; `first_bad` is the seq of the first entry that does not
     * verify. Entries from the key's boundary on must be HMACs under the key, and the unkeyed part
     * before it must end at the head sealed with the key (so it cannot be rewritten either).
     */
    async verify(pageSize = 1000): Promise<AuditVerification> {
      const keyed = chain ? { keyed_from: chain.fromSeq } : {};
      let prev = GENESIS;
      let after = 0;
      let entries = 0;
      let lastUnkeyed: { seq: number; id: string } | undefined;
      let last: { seq: number; id: string } | undefined;
      let crossed = !chain;
      const bad = (at: { seq: number; id?: string }, reason: AuditBreak): AuditVerification => ({
        ok: false,
        entries,
        first_bad: at.seq,
        ...(at.id !== undefined ? { first_bad_id: at.id } : {}),
        reason,
        ...keyed,
      });
      // The unkeyed part ends where the key says it did; blame its last entry (or the first keyed one).
      const boundaryHolds = () => !chain || prev === chain.afterHash;
      for (;;) {
        const page = await db.selectFrom('audit_events').selectAll().where('seq', '>', after).orderBy('seq').limit(pageSize).execute();
        if (!page.length) {
          if (!crossed && !boundaryHolds()) return bad(lastUnkeyed ?? { seq: chain!.fromSeq }, 'unkeyed_rewritten');
          const end = chain ? await checkSeal(chain, last) : undefined;
          return end ? bad(end.at, end.reason) : { ok: true, entries, ...keyed };
        }
        for (const row of page) {
          const seq = Number(row.seq);
          entries++;
          if (!crossed && seq >= chain!.fromSeq) {
            crossed = true;
            if (!boundaryHolds()) return bad(lastUnkeyed ?? { seq, id: row.id }, 'unkeyed_rewritten');
          }
          if (row.prev_hash !== prev) return bad({ seq, id: row.id }, 'chain_break');
          if (!entryHolds(chain, seq, prev, row)) return bad({ seq, id: row.id }, 'hash_mismatch');
          if (!crossed) lastUnkeyed = { seq, id: row.id };
          last = { seq, id: row.id };
          prev = row.hash;
          after = seq;
        }
      }
    },

    /**
     * The chain head, for anchoring outside Warrant: a later export whose entry at `seq` has another
     * hash, or whose chain no longer verifies, was rewritten (docs/audit.md).
     */
    async head(): Promise<AuditHead> {
      const keyed = chain ? { keyed_from: chain.fromSeq } : {};
      const row = await db.selectFrom('audit_events').selectAll().orderBy('seq', 'desc').limit(1).executeTakeFirst();
      if (!row) return { seq: 0, hash: GENESIS, at: null, keyed: false, ...keyed };
      const seq = Number(row.seq);
      const holds = !!chain && seq >= chain.fromSeq && entryHolds(chain, seq, row.prev_hash, row);
      return { seq, hash: row.hash, at: Number(row.at), keyed: holds, ...keyed };
    },
  };
}

const SEAL_ID = 'head';

/** Rewrites the sealed head (chain.ts `sealOf`); inside the append's transaction, under the chain lock. */
async function writeSeal(trx: Db, chain: ChainKey, head: { seq: number; id: string; hash: string }): Promise<void> {
  const row = { seq: head.seq, event_id: head.id, hash: head.hash, mac: sealOf(chain.key, head.seq, head.id, head.hash) };
  await trx
    .insertInto('audit_seal')
    .values({ id: SEAL_ID, ...row })
    .onConflict((oc) => oc.column('id').doUpdateSet(row))
    .execute();
}

/**
 * Seals the current head where no seal is (a store keyed before seals existed), or, with `force`,
 * over one made under another key (a new chain key: the old seal cannot be checked any more).
 */
export async function ensureSeal(trx: Db, dialect: Dialect, chain: ChainKey, force = false): Promise<void> {
  await lockChain(trx, dialect);
  if (!force && (await trx.selectFrom('audit_seal').select('id').where('id', '=', SEAL_ID).executeTakeFirst())) return;
  const head = await trx.selectFrom('audit_events').select(['seq', 'id', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
  if (head) await writeSeal(trx, chain, { seq: Number(head.seq), id: head.id, hash: head.hash });
  else if (force) await trx.deleteFrom('audit_seal').where('id', '=', SEAL_ID).execute();
}

function toEntry(row: AuditEventRow): AuditEntry {
  return { ...row, seq: Number(row.seq), data: JSON.parse(row.data) as Record<string, unknown> };
}

export type AuditLog = ReturnType<typeof createAuditLog>;

/**
 * The embedded mode's writer thread (audit-writer.worker.ts, started through a .mjs bootstrap that
 * registers tsx, since a worker does not inherit the parent's module hooks). Referenced only while
 * appends are in flight, so an idle writer never keeps the process alive.
 */
function createWriterThread(file: string, key: KeyObject | undefined) {
  let worker: Worker | undefined;
  let closed = false;
  let nextId = 0;
  const waiting = new Map<number, { resolve(rows: (ChainRow & { seq: number })[]): void; reject(err: Error): void }>();
  const failAll = (err: Error) => {
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  const start = () => {
    // The chain key travels as a KeyObject, cloned into the thread: it is never in a message or a log line.
    const w = new Worker(new URL('./audit-writer.worker.mjs', import.meta.url), { workerData: { file, key } });
    w.on('message', (msg: { id: number; rows?: (ChainRow & { seq: number })[]; error?: string }) => {
      const pending = waiting.get(msg.id);
      waiting.delete(msg.id);
      if (waiting.size === 0) w.unref();
      if (msg.error !== undefined) pending?.reject(new Error(`audit write failed: ${msg.error}`));
      else pending?.resolve(msg.rows!);
    });
    w.on('error', (err) => failAll(err));
    w.on('exit', () => {
      if (worker === w) worker = undefined;
      failAll(new Error('the audit writer thread stopped'));
    });
    w.unref();
    return w;
  };
  return {
    append(inputs: AuditInput[]): Promise<(ChainRow & { seq: number })[]> {
      // A call abandoned at shutdown may finish after close: its entry is refused, never written by
      // a new thread on a store that may be gone.
      if (closed) return Promise.reject(new Error('the audit writer is closed'));
      worker ??= start();
      const w = worker;
      const id = nextId++;
      w.ref();
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        w.postMessage({ id, inputs });
      });
    },
    async close(): Promise<void> {
      closed = true;
      const w = worker;
      if (!w) return;
      worker = undefined;
      const exited = new Promise((r) => w.once('exit', r));
      w.ref(); // keep the process alive until the writer has closed its connection
      w.postMessage('close');
      await exited;
    },
  };
}
