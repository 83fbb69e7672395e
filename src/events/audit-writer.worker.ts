// The embedded mode's audit writer: a thread with its own SQLite connection that appends batches
// to the hash chain, so the synchronous SQLite work of thousands of audit entries a second never
// runs on the event loop that serves requests. Both connections take the write lock before
// reading the chain head (BEGIN IMMEDIATE here, and in every transaction of the main connection),
// so the chain has one head at a time.
import { parentPort, workerData } from 'node:worker_threads';
import SQLite from 'better-sqlite3';
import { GENESIS, chainRows, type ChainInput, type ChainRow } from './chain.ts';

interface AppendMessage {
  id: number;
  inputs: ChainInput[];
}

const db = new SQLite((workerData as { file: string }).file);
db.pragma('journal_mode = WAL');
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = NORMAL');
const head = db.prepare('select hash from audit_events order by seq desc limit 1');
const insert = db.prepare(
  'insert into audit_events (id, at, type, actor, subject, data, prev_hash, hash) values (@id, @at, @type, @actor, @subject, @data, @prev_hash, @hash)',
);
const append = db.transaction((inputs: ChainInput[]) => {
  const last = head.get() as { hash: string } | undefined;
  const rows = chainRows(last?.hash ?? GENESIS, inputs, Date.now);
  return rows.map((r): ChainRow & { seq: number } => ({ ...r, seq: Number(insert.run(r).lastInsertRowid) }));
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
