import type pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import { GENESIS, chainRows, sealOf, type ChainKey, type ChainRow } from './chain.ts';
import { deliverable } from './outbox.ts';
import type { Db } from '../store/index.ts';
import type { Database } from '../store/schema.ts';

// The PostgreSQL audit writer: one round trip per batch in the common case. Every writer of the
// chain, on every instance, takes the chain's advisory lock (audit.ts `lockChain`) and gives its
// entries explicit seqs, head + 1 on: the primary key on `seq` is then the compare-and-swap on the
// head. This writer keeps the head it last wrote (or read) in memory, hashes a batch against it
// locally, and sends one statement that takes the lock, inserts the rows, rewrites the sealed head
// and moves the seq's sequence along (kept for writers that still insert with its default).
//
// The statement's snapshot is taken when it starts, before it waits for the lock (READ COMMITTED):
// it may not see rows another writer committed while it waited, so it cannot check the head by
// reading it. It needs not: if another writer moved the head, the row at head + 1 exists, committed
// (writers commit before they release the lock), and the insert fails on the primary key, which
// checks committed rows whatever the snapshot. Then the head is read again and the batch re-hashed.
// No two entries can follow the same one (no fork), and seqs stay contiguous (no gap to slip into).
//
// The transaction path (audit.ts `appendIn`: lock, read the head, insert, seal, outbox) stays for
// batches with entries that queue webhook deliveries (the active webhooks are read under the lock,
// and matched in JavaScript), and after repeated conflicts (the lock then guarantees progress).

/** Arbitrary constant, shared with audit.ts: the advisory lock that serializes appends to the chain. */
export const CHAIN_LOCK = 0x5741_5252;

/** Conflicts in a row after which a batch takes the transaction path (which waits its turn instead). */
const FAST_ATTEMPTS = 3;

type Written = ChainRow & { seq: number };
type Input = { type: string; actor: string; subject?: string; data?: Record<string, unknown> };

export interface PgAuditWriterOptions {
  /** A pool of the writer's own on the store's database (store.sidePool); ended by close(). */
  pool: pg.Pool;
  chain?: ChainKey;
  now: () => number;
  /** Every statement the writer runs is cancelled by PostgreSQL past this (statement_timeout). */
  statementTimeoutMs: number;
  /** The transaction path, run in a transaction on the writer's pool. */
  appendIn(trx: Db, inputs: Input[]): Promise<Written[]>;
  /** Called with each statement sent (counting round trips). */
  onQuery?: (sql: string) => void;
}

/** The INSERT … SELECT FROM unnest(…) that appends a batch; exported for the bench and tests. */
export function fastStatement(rows: Written[], chain: ChainKey | undefined): { text: string; values: unknown[] } {
  const col = <K extends keyof Written>(k: K) => rows.map((r) => r[k]);
  const values: unknown[] = [
    col('seq'), col('id'), col('at'), col('type'), col('actor'), col('subject'), col('data'), col('prev_hash'), col('hash'), CHAIN_LOCK,
  ];
  let seal = '';
  if (chain) {
    const last = rows.at(-1)!;
    values.push(last.seq, last.id, last.hash, sealOf(chain.key, last.seq, last.id, last.hash));
    seal = `, seal as (
      insert into audit_seal (id, seq, event_id, hash, mac) select 'head', $11, $12, $13, $14 where exists (select 1 from ins)
      on conflict (id) do update set seq = excluded.seq, event_id = excluded.event_id, hash = excluded.hash, mac = excluded.mac)`;
  }
  // The lock is an InitPlan under a one-time filter: taken before the first row is inserted.
  const text = `with ins as (
      insert into audit_events (seq, id, at, type, actor, subject, data, prev_hash, hash)
      select * from unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
      where (select count(*) from (select pg_advisory_xact_lock($10, hashtext(current_schema()))) l) = 1
      returning seq)${seal}
    select setval(pg_get_serial_sequence('audit_events', 'seq'), (select max(seq) from ins)) as head`;
  return { text, values };
}

const isHeadMoved = (err: unknown) => (err as { code?: string; table?: string }).code === '23505' && (err as { table?: string }).table === 'audit_events';

export function createPgAuditWriter(opts: PgAuditWriterOptions) {
  const { pool, chain } = opts;
  const timeout = Math.max(1, Math.floor(opts.statementTimeoutMs));
  // Sent in the startup message of each connection the pool opens from now on (pg's client option):
  // no statement of its own, and a hung PostgreSQL cancels the write instead of holding the writer.
  (pool as unknown as { options: pg.PoolConfig }).options.statement_timeout = timeout;
  const onQuery = opts.onQuery;
  const db: Db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), ...(onQuery ? { log: (e) => onQuery(e.query.sql) } : {}) });
  const query = <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => {
    onQuery?.(text);
    return pool.query<R>(text, values);
  };
  /** The head as this writer last saw it; undefined: read it before the next fast write. */
  let head: { seq: number; hash: string } | undefined;
  let tail: Promise<unknown> = Promise.resolve();
  let closed = false;

  async function readHead(): Promise<{ seq: number; hash: string }> {
    const { rows } = await query<{ seq: string | number; hash: string }>('select seq, hash from audit_events order by seq desc limit 1');
    return rows[0] ? { seq: Number(rows[0].seq), hash: rows[0].hash } : { seq: 0, hash: GENESIS };
  }

  async function viaTransaction(inputs: Input[]): Promise<Written[]> {
    const rows = await db.transaction().execute((trx) => opts.appendIn(trx, inputs));
    const last = rows.at(-1)!;
    head = { seq: last.seq, hash: last.hash };
    return rows;
  }

  async function write(inputs: Input[]): Promise<Written[]> {
    if (inputs.some((e) => deliverable(e.type))) return viaTransaction(inputs);
    for (let attempt = 0; attempt < FAST_ATTEMPTS; attempt++) {
      head ??= await readHead();
      const base = head;
      const rows = chainRows(base.hash, inputs, opts.now, chain?.key).map((r, i): Written => ({ ...r, seq: base.seq + 1 + i }));
      const { text, values } = fastStatement(rows, chain);
      try {
        await query(text, values);
      } catch (err) {
        head = undefined;
        if (isHeadMoved(err)) continue;
        throw err;
      }
      head = { seq: rows.at(-1)!.seq, hash: rows.at(-1)!.hash };
      return rows;
    }
    return viaTransaction(inputs);
  }

  return {
    /** Appends `inputs` in order (one at a time per writer: the head in memory has one owner). */
    append(inputs: Input[]): Promise<Written[]> {
      if (closed) return Promise.reject(new Error('the audit writer is closed'));
      const run = tail.then(() => write(inputs));
      tail = run.catch(() => {});
      return run;
    },
    async close(): Promise<void> {
      closed = true;
      await tail;
      await db.destroy();
    },
  };
}

export type PgAuditWriter = ReturnType<typeof createPgAuditWriter>;
