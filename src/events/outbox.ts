import type { Db } from '../store/index.ts';
import { matches, messageId } from './webhook-messages.ts';

// The webhook outbox: an audit entry and the deliveries it causes commit in one transaction, so
// a process killed at any point after the commit loses no alert (the worker sends them later) and
// one killed before it leaves neither. Used by the audit log's two writers: the main connection
// (audit.ts, inside the caller's transaction) and the embedded writer thread
// (audit-writer.worker.ts, through its own SQLite connection); the pure part is shared by both.
//
// The active webhooks are read inside the appending transaction, after the chain's write lock is
// taken (PostgreSQL advisory lock, SQLite BEGIN IMMEDIATE). Creating a webhook appends its
// `webhook.created` entry in the same transaction as the webhook's row, under that same lock: every
// event that follows `webhook.created` in the chain, written by any instance, sees the webhook.
// No cache, hence no window in which a new webhook misses events.

/**
 * Per-call records (`proxy.call`, `token.exported`, `token.leased`) are audited, never sent as
 * webhooks: they are not incidents, and a busy proxy would flood every `*` subscriber. A batch made
 * of them only (the audit queue's) costs no query here.
 */
const CALL_RECORD_PREFIXES = ['proxy.', 'token.'];
export const deliverable = (type: string): boolean => !CALL_RECORD_PREFIXES.some((p) => type.startsWith(p));

export interface OutboxHook {
  id: string;
  /** JSON list of patterns, as stored. */
  events: string;
}

export interface OutboxRow {
  id: string;
  webhook_id: string;
  event_id: string;
  status: 'pending';
  attempts: number;
  next_attempt_at: number;
  created_at: number;
}

/** One pending delivery per (matching webhook, deliverable entry), due at `at`; its id is the `webhook-id`. */
export function outboxRows(hooks: readonly OutboxHook[], entries: readonly { id: string; type: string }[], at: number): OutboxRow[] {
  const rows: OutboxRow[] = [];
  const patterns = hooks.map((h) => ({ id: h.id, events: JSON.parse(h.events) as string[] }));
  for (const e of entries) {
    if (!deliverable(e.type)) continue;
    for (const h of patterns) {
      if (!matches(h.events, e.type)) continue;
      rows.push({ id: messageId(h.id, e.id), webhook_id: h.id, event_id: e.id, status: 'pending', attempts: 0, next_attempt_at: at, created_at: at });
    }
  }
  return rows;
}

/** Queues the deliveries of `entries` inside `trx`, the transaction that appended them. */
export async function writeOutbox(trx: Db, entries: readonly { id: string; type: string }[], at: number): Promise<number> {
  if (!entries.some((e) => deliverable(e.type))) return 0;
  const hooks = await trx.selectFrom('webhooks').select(['id', 'events']).where('status', '=', 'active').execute();
  const rows = outboxRows(hooks, entries, at);
  // Chunks keep a statement under the dialects' bound-parameter limits.
  for (let i = 0; i < rows.length; i += 1000) await trx.insertInto('webhook_deliveries').values(rows.slice(i, i + 1000)).execute();
  return rows.length;
}
