import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { createStore, type Store } from '../../src/store/index.ts';
import { createAuditLog, loadChainKey, type AuditLog, type ChainKey } from '../../src/events/index.ts';
import { openTestStore, skipWithoutPostgres, testDatabaseUrl, testKeyRing, type TestStore } from '../helpers/stores.ts';
import { eventually } from '../helpers/lifecycle.ts';

// The PostgreSQL audit writer (src/events/audit-pg.ts): a batch is one statement, and instances
// writing the same chain neither fork it nor leave gaps. Runs only with WARRANT_TEST_DATABASE_URL.

if (skipWithoutPostgres) test('PostgreSQL audit writer', { skip: skipWithoutPostgres }, () => {});

/** Counts the statements sent on `pool`'s connections (pg's client `query`), from the moment it is called. */
function countStatements(pool: pg.Pool): { count: number } {
  const counter = { count: 0 };
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      counter.count++;
      return query(...args);
    };
  });
  return counter;
}

const call = (i: number, who: string) => ({ type: 'proxy.call', actor: `agent:${who}`, subject: 'connection:con_1', data: { i } });

describe('PostgreSQL audit writer: one statement per batch, one chain across instances', { skip: skipWithoutPostgres }, () => {
  let ts: TestStore;
  let second: Store;
  let chain: ChainKey;
  let mainStatements = 0;
  const logs: AuditLog[] = [];

  /** An instance's audit log: its own writer pool, as createWarrant wires it. */
  function instance(store: Store, onQuery?: (sql: string) => void): { log: AuditLog; pool: pg.Pool } {
    const pool = store.sidePool!(2);
    const log = createAuditLog({ db: store.db, dialect: store.dialect, now: Date.now, chain, pgPool: pool, writeTimeoutMs: 5_000, onQuery });
    logs.push(log);
    return { log, pool };
  }

  before(async () => {
    const ring = testKeyRing();
    ts = await openTestStore('postgres', ring);
    // A second instance on the same schema; its main pool counts statements (the writer must not use it).
    second = await createStore({ databaseUrl: testDatabaseUrl!, pgSchema: ts.location, ring: { current: () => ring }, poolSize: 2, onQuery: () => mainStatements++ });
    chain = (await loadChainKey({ vault: ts.store.vault, db: ts.store.db, dialect: 'postgres' })).chain;
  });
  after(async () => {
    for (const log of logs) await log.close();
    await second?.close();
    await ts?.cleanup();
  });

  test('N batches are N statements (one round trip each) on the writer, none on the work pool', async () => {
    const { log, pool } = instance(second);
    const counter = countStatements(pool);
    await log.append([call(0, 'warm')]); // reads the head once (and opens the connection)
    counter.count = 0;
    mainStatements = 0;
    const batches = 20;
    for (let b = 0; b < batches; b++) await log.append(Array.from({ length: 10 }, (_, i) => call(b * 10 + i, 'count')));
    assert.equal(counter.count, batches, 'one statement per batch');
    assert.equal(mainStatements, 0, 'nothing on the work pool');
    assert.deepEqual(await log.verify(), { ok: true, entries: 1 + batches * 10, keyed_from: chain.fromSeq });
  });

  test('a writer whose head is stale learns it from the primary key, re-reads it and appends after it', async () => {
    const a = instance(ts.store);
    const b = instance(second);
    const counter = countStatements(a.pool);
    await a.log.append([call(1, 'a')]);
    await b.log.append([call(2, 'b')]); // moves the head under a
    counter.count = 0;
    const [entry] = await a.log.append([call(3, 'a')]);
    assert.equal(counter.count, 3, 'the refused insert, the head read again, the insert');
    assert.equal(entry!.seq, (await a.log.head()).seq);
    assert.equal((await a.log.verify()).ok, true);
  });

  // The statement's snapshot is taken before it waits for the chain lock: a row committed while it
  // waited is invisible to it. The primary key on seq (checked against committed rows) must refuse it.
  test('a batch that waited for the lock while another writer appended does not fork the chain', async () => {
    const a = instance(ts.store);
    const other = createAuditLog({ db: second.db, dialect: 'postgres', now: Date.now, chain }); // the transaction path
    await a.log.append([call(1, 'a')]); // a knows the head
    let waiting: Promise<unknown> | undefined;
    const watcher = ts.store.sidePool!(1);
    await second.db.transaction().execute(async (trx) => {
      await other.append([{ type: 'agent.created', actor: 'admin', subject: 'agent:agt_x' }], trx); // holds the lock, head + 1 inserted
      waiting = a.log.append([call(2, 'a')]);
      await eventually(async () => {
        const { rows } = await watcher.query("select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted");
        return rows[0].n > 0;
      }, 20_000, 20);
    });
    await watcher.end();
    const [entry] = (await waiting) as { seq: number; prev_hash: string }[];
    const rows = await ts.store.db.selectFrom('audit_events').select(['seq', 'hash', 'prev_hash']).orderBy('seq', 'desc').limit(2).execute();
    assert.equal(entry!.seq, Number(rows[0]!.seq));
    assert.equal(entry!.prev_hash, rows[1]!.hash, 'after the entry committed while it waited');
    assert.equal((await a.log.verify()).ok, true);
  });

  test('two instances appending many batches at once: the chain verifies, no gap, no fork, every entry there', async () => {
    const a = instance(ts.store);
    const b = instance(second);
    const before = await a.log.head();
    const ids = new Set<string>();
    const run = async (log: AuditLog, who: string) => {
      for (let batch = 0; batch < 40; batch++) {
        const size = 1 + (batch % 7) * 5;
        // Now and then an entry that queues webhook deliveries: that batch takes the transaction path.
        const inputs = Array.from({ length: size }, (_, i) => (batch % 10 === 9 && i === 0 ? { type: 'agent.created', actor: 'admin', subject: `agent:${who}` } : call(batch * 100 + i, who)));
        for (const e of await log.append(inputs)) ids.add(e.id);
      }
    };
    await Promise.all([run(a.log, 'a'), run(b.log, 'b'), run(a.log, 'a2')]);
    const rows = await ts.store.db.selectFrom('audit_events').select(['seq', 'id', 'prev_hash']).where('seq', '>', before.seq).orderBy('seq').execute();
    assert.equal(rows.length, ids.size);
    assert.ok(rows.every((r) => ids.has(r.id)), 'every entry written is there');
    rows.forEach((r, i) => assert.equal(Number(r.seq), before.seq + 1 + i, 'no gap'));
    assert.equal(new Set(rows.map((r) => r.prev_hash)).size, rows.length, 'no two entries follow the same one');
    const verified = await b.log.verify();
    assert.equal(verified.ok, true, JSON.stringify(verified));
  });
});
