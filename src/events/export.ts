import { WarrantError } from '../errors/index.ts';
import type { AuditEventRow, Db } from '../store/index.ts';
import type { AuditEntry } from './audit.ts';

// Pages of the audit log for SIEM exporters (GET /v1/audit/export, `warrant audit export`;
// docs/audit.md, "Export"). A page is a range of seqs (after, upper], fixed before the first line
// is written, so its cursor can be answered in a header and the page never grows while it streams.
// Resuming from a cursor neither skips nor repeats an entry, even while entries are being written:
// appends are serialized by the chain lock and commit before the next one takes it, so seqs become
// visible in order, and every entry up to a visible seq is visible (or was rolled back, leaving a
// gap in the numbers that no entry will ever fill).

/** `{seq}-{first 16 hex of that entry's hash}`: where an exporter stands, and what it saw there. */
export interface AuditCursor {
  seq: number;
  /** The first 16 hex digits of the entry's hash; the page refuses the cursor when the entry differs now. */
  hash: string;
}

const CURSOR = /^(\d{1,15})-([0-9a-f]{16})$/;

export const cursorOf = (e: { seq: number; hash: string }): string => `${e.seq}-${e.hash.slice(0, 16)}`;

/** The cursor a caller sent, or an `invalid_request` naming `field`. */
export function parseCursor(value: string, field = 'cursor'): AuditCursor {
  const m = CURSOR.exec(value);
  if (!m || !Number.isSafeInteger(Number(m[1]))) {
    throw new WarrantError('invalid_request', `${field}: expected a cursor as answered in warrant-next-cursor ({seq}-{16 hex digits})`, { field });
  }
  return { seq: Number(m[1]), hash: m[2]! };
}

export interface ExportQuery {
  cursor?: AuditCursor;
  /** Only entries at or after this time (epoch ms). */
  since?: number;
  limit: number;
}

export interface ExportPage {
  /** Entries in the page. */
  count: number;
  /** Where the next page starts; undefined only while the log is empty (keep the cursor you have). */
  next?: string;
  /** Whether the page ends at the head as it was when the page was fixed (a shorter page: caught up). */
  caughtUp: boolean;
  /** The page's entries in seq order, read in batches. */
  entries(): AsyncGenerator<AuditEntry>;
}

const BATCH = 1000;

export async function exportPage(db: Db, q: ExportQuery): Promise<ExportPage> {
  const after = q.cursor?.seq ?? 0;
  if (q.cursor && after > 0) {
    const at = await db.selectFrom('audit_events').select('hash').where('seq', '=', after).executeTakeFirst();
    if (!at?.hash.startsWith(q.cursor.hash)) {
      throw new WarrantError('conflict', 'cursor: the entry this cursor was taken at is gone or was changed since; run `warrant audit verify`', { field: 'query.cursor' });
    }
  }
  const head = await db.selectFrom('audit_events').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
  if (!head) return { count: 0, caughtUp: true, entries: async function* () {} };
  const headSeq = Number(head.seq);
  const since = q.since;
  const inRange = (upper: number) => {
    let query = db.selectFrom('audit_events').where('seq', '>', after).where('seq', '<=', upper);
    if (since !== undefined) query = query.where('at', '>=', since);
    return query;
  };
  // The page ends at the limit-th entry after the cursor, or at the head when fewer are left: then
  // the next page starts past every entry seen up to now, matching or not.
  const full = await inRange(headSeq).select(['seq', 'hash']).orderBy('seq').offset(q.limit - 1).limit(1).executeTakeFirst();
  const upper = full ? { seq: Number(full.seq), hash: full.hash } : { seq: headSeq, hash: head.hash };
  if (upper.seq <= after) return { count: 0, caughtUp: true, next: q.cursor ? cursorOf({ seq: after, hash: q.cursor.hash }) : undefined, entries: async function* () {} };
  const counted = await inRange(upper.seq).select((eb) => eb.fn.countAll<number | string | bigint>().as('n')).executeTakeFirst();
  return {
    count: Number(counted?.n ?? 0),
    next: cursorOf(upper),
    caughtUp: !full,
    async *entries() {
      let from = after;
      for (;;) {
        let query = db.selectFrom('audit_events').selectAll().where('seq', '>', from).where('seq', '<=', upper.seq);
        if (since !== undefined) query = query.where('at', '>=', since);
        const rows = await query.orderBy('seq').limit(BATCH).execute();
        for (const row of rows) yield entryOf(row);
        if (rows.length < BATCH) return;
        from = Number(rows.at(-1)!.seq);
      }
    },
  };
}

const entryOf = (row: AuditEventRow): AuditEntry => ({ ...row, seq: Number(row.seq), at: Number(row.at), data: JSON.parse(row.data) as Record<string, unknown> });
