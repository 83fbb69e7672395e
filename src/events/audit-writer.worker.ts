// The embedded mode's audit writer: a thread with its own SQLite connection that appends batches
// to the hash chain, so the synchronous SQLite work of thousands of audit entries a second never
// runs on the event loop that serves requests. Both connections take the write lock before
// reading the chain head (BEGIN IMMEDIATE here, and in every transaction of the main connection),
// so the chain has one head at a time. The webhook deliveries an entry causes are queued in the
// same transaction (outbox.ts), as on the main connection, and so is the sealed head. Entries are keyed with the chain key
// the main thread hands over in workerData (a KeyObject; absent only where the log is unkeyed).
import type { KeyObject } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import SQLite from 'better-sqlite3';
import { GENESIS, chainRows, sealOf, type ChainInput, type ChainRow } from './chain.ts';
import { deliverable, outboxRows, type OutboxHook } from './outbox.ts';

interface AppendMessage {
  id: number;
  inputs: ChainInput[];
}

const { file, key } = workerData as { file: string; key?: KeyObject };
const db = new SQLite(file);
db.pragma('journal_mode = WAL');
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = NORMAL');
const head = db.prepare('select hash from audit_events order by seq desc limit 1');
const insert = db.prepare(
  'insert into audit_events (id, at, type, actor, subject, data, prev_hash, hash) values (@id, @at, @type, @actor, @subject, @data, @prev_hash, @hash)',
);
// The sealed head (audit.ts `writeSeal`), rewritten in the append's transaction.
const seal = db.prepare(
  "insert into audit_seal (id, seq, event_id, hash, mac) values ('head', @seq, @event_id, @hash, @mac) on conflict (id) do update set seq = excluded.seq, event_id = excluded.event_id, hash = excluded.hash, mac = excluded.mac",
);
const activeHooks = db.prepare("select id, events from webhooks where status = 'active'");
const queue = db.prepare(
  'insert into webhook_deliveries (id, webhook_id, event_id, status, attempts, next_attempt_at, created_at) values (@id, @webhook_id, @event_id, @status, @attempts, @next_attempt_at, @created_at)',
);
const append = db.transaction((inputs: ChainInput[]) => {
  const last = head.get() as { hash: string } | undefined;
  const rows = chainRows(last?.hash ?? GENESIS, inputs, Date.now, key);
  const appended = rows.map((r): ChainRow & { seq: number } => ({ ...r, seq: Number(insert.run(r).lastInsertRowid) }));
  const newest = appended.at(-1);
  if (key && newest) seal.run({ seq: newest.seq, event_id: newest.id, hash: newest.hash, mac: sealOf(key, newest.seq, newest.id, newest.hash) });
  if (rows.some((r) => deliverable(r.type))) {
    for (const d of outboxRows(activeHooks.all() as OutboxHook[], rows, Date.now())) queue.run(d);
  }
  return appended;
});

parentPort!.on('message', (msg: AppendMessage | 'close') => {
  if (msg === 'close') {
    db.close();
    parentPort!.close();
    return;
  }
  try {
    parentPort!.postMessage({ id: msg.id, rows: append.immediate(msg.inputs) });
  } catch (err) {
    parentPort!.postMessage({ id: msg.id, error: (err as Error).message });
  }
});
