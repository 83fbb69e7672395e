import { createHash, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Db, Dialect, AuditEventRow } from '../store/index.ts';

// A hash chain: each entry's hash covers its content and the previous entry's hash, so an
// edited, removed or reordered entry breaks every hash after it. `verify()` walks the chain.

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

const GENESIS = '0'.repeat(64);
// Arbitrary constant: the advisory lock that serializes appends to the chain on PostgreSQL.
const CHAIN_LOCK = 0x5741_5252;

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

function hashOf(prev: string, e: { id: string; at: number; type: string; actor: string; subject: string | null; data: string }): string {
  return createHash('sha256')
    .update(prev)
    .update('\n')
    .update(canonical({ id: e.id, at: e.at, type: e.type, actor: e.actor, subject: e.subject, data: JSON.parse(e.data) }))
    .digest('hex');
}

export interface AuditQuery {
  type?: string;
  subject?: string;
  actor?: string;
  afterSeq?: number;
  limit?: number;
}

export function createAuditLog(deps: { db: Db; dialect: Dialect; now: () => number }) {
  const { db, dialect } = deps;

  async function appendIn(trx: Db, inputs: AuditInput[]): Promise<AuditEntry[]> {
    if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(${CHAIN_LOCK})`.execute(trx);
    const last = await trx.selectFrom('audit_events').select('hash').orderBy('seq', 'desc').limit(1).executeTakeFirst();
    let prev = last?.hash ?? GENESIS;
    const out: AuditEntry[] = [];
    for (const input of inputs) {
      const row = {
        id: `evt_${randomUUID().replaceAll('-', '')}`,
        at: deps.now(),
        type: input.type,
        actor: input.actor,
        subject: input.subject ?? null,
        data: canonical(input.data ?? {}),
      };
      const hash = hashOf(prev, row);
      const inserted = await trx
        .insertInto('audit_events')
        .values({ ...row, prev_hash: prev, hash })
        .returning('seq')
        .executeTakeFirstOrThrow();
      out.push({ ...row, data: input.data ?? {}, seq: Number(inserted.seq), prev_hash: prev, hash });
      prev = hash;
    }
    return out;
  }

  return {
    /**
     * Appends entries in order. Inside `trx` they commit with the caller's change; without it they
     * get a transaction of their own. Appends are serialized (the chain has one head).
     */
    async append(inputs: AuditInput | AuditInput[], trx?: Db): Promise<AuditEntry[]> {
      const list = Array.isArray(inputs) ? inputs : [inputs];
      if (!list.length) return [];
      if (trx) return appendIn(trx, list);
      return db.transaction().execute((t) => appendIn(t, list));
    },

    async query(q: AuditQuery = {}): Promise<AuditEntry[]> {
      let query = db.selectFrom('audit_events').selectAll();
      if (q.type) query = query.where('type', '=', q.type);
      if (q.subject) query = query.where('subject', '=', q.subject);
      if (q.actor) query = query.where('actor', '=', q.actor);
      if (q.afterSeq !== undefined) query = query.where('seq', '>', q.afterSeq);
      const rows = await query.orderBy('seq').limit(Math.min(q.limit ?? 100, 1000)).execute();
      return rows.map(toEntry);
    },

    /** Walks the chain from the start; `first_bad` is the seq of the first entry that does not verify. */
    async verify(pageSize = 1000): Promise<{ ok: boolean; entries: number; first_bad?: number }> {
      let prev = GENESIS;
      let after = 0;
      let entries = 0;
      for (;;) {
        const page = await db.selectFrom('audit_events').selectAll().where('seq', '>', after).orderBy('seq').limit(pageSize).execute();
        if (!page.length) return { ok: true, entries };
        for (const row of page) {
          entries++;
          if (row.prev_hash !== prev || hashOf(prev, row) !== row.hash) return { ok: false, entries, first_bad: Number(row.seq) };
          prev = row.hash;
          after = Number(row.seq);
        }
      }
    },
  };
}

function toEntry(row: AuditEventRow): AuditEntry {
  return { ...row, seq: Number(row.seq), data: JSON.parse(row.data) as Record<string, unknown> };
}

export type AuditLog = ReturnType<typeof createAuditLog>;
