import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import pino from 'pino';
import { createAuditLog, createAuditQueue, loadChainKey, type AuditInput, type AuditLog } from '../../src/events/index.ts';
import { openTestStore, skipWithoutPostgres, testDatabaseUrl, type TestStore } from '../helpers/stores.ts';
import { startLifecycle, eventually, withSchema, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';

// The audit write deadline (WARRANT_AUDIT_WRITE_DEADLINE_MS): a store that hangs rather than fails
// must still stop the proxy (fail closed), without dropping what it holds.

const silent = pino({ level: 'silent' });

test('an entry unwritten past the deadline makes the queue refuse until the backlog is written; nothing is dropped', async () => {
  let t = 1_000_000;
  const written: AuditInput[] = [];
  let release!: () => void;
  let hung = true;
  const audit = {
    async append(inputs: AuditInput | AuditInput[]) {
      if (hung) await new Promise<void>((r) => (release = r));
      written.push(...(Array.isArray(inputs) ? inputs : [inputs]));
      return [];
    },
  } as unknown as AuditLog;
  const q = createAuditQueue({ audit, logger: silent, flushIntervalMs: 1, writeDeadlineMs: 1_000, now: () => t });
  q.reserve()!.commit({ type: 'proxy.call', actor: 'a', data: { i: 0 } });
  await eventually(() => release !== undefined);
  t += 1_000;
  const slot = q.reserve();
  assert.ok(slot, 'at the deadline, not past it: still accepting');
  slot.commit({ type: 'proxy.call', actor: 'a', data: { i: 1 } });
  t += 1;
  assert.equal(q.reserve(), undefined, 'past the deadline: refused');
  assert.equal(q.healthy(), false);
  hung = false;
  release();
  await eventually(() => q.healthy(), 10_000, 5);
  assert.ok(q.reserve(), 'the backlog written: accepting again');
  assert.deepEqual(written.map((e) => e.data!.i), [0, 1]);
  await q.close();
});

describe('audit write deadline on PostgreSQL: a locked table', { skip: skipWithoutPostgres }, () => {
  let ts: TestStore;
  let log: AuditLog;
  before(async () => {
    ts = await openTestStore('postgres');
    const { chain } = await loadChainKey({ vault: ts.store.vault, db: ts.store.db, dialect: 'postgres' });
    log = createAuditLog({ db: ts.store.db, dialect: 'postgres', now: Date.now, chain, pgPool: ts.store.sidePool!(2), writeTimeoutMs: 300 });
    await log.append({ type: 'proxy.call', actor: 'agent:a' });
  });
  after(async () => {
    await log?.close();
    await ts?.cleanup();
  });

  test('a write that waits on the table is cancelled by its statement timeout, and goes through once the table is free', async () => {
    const locker = new pg.Client({ connectionString: withSchema(testDatabaseUrl!, ts.location) });
    await locker.connect();
    try {
      await locker.query('begin');
      await locker.query('lock table audit_events in access exclusive mode');
      await assert.rejects(log.append({ type: 'proxy.call', actor: 'agent:a' }), /statement timeout/);
      await locker.query('rollback');
    } finally {
      await locker.end();
    }
    await log.append({ type: 'proxy.call', actor: 'agent:a' });
    assert.deepEqual((await log.verify()).ok, true);
  });
});

describe('audit write deadline on PostgreSQL: the proxy answers 503 and /readyz reports it', { skip: skipWithoutPostgres }, () => {
  let env: LifecycleEnv;
  let base: string;
  let conn: string;
  let key: string;

  before(async () => {
    env = await startLifecycle({ store: 'postgres', env: { WARRANT_AUDIT_WRITE_DEADLINE_MS: '400' } });
    // The lifecycle harness has the app listening already.
    base = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
    conn = await env.connect();
    const owner = (await env.warrant.store.connections.get(conn))?.owner;
    const res = await env.warrant.app.inject({
      method: 'POST', url: '/v1/agents', headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      payload: { name: 'reader', owner, grants: [{ connection: conn, scopes: ['items:read'] }] },
    });
    assert.equal(res.statusCode, 201, res.body);
    key = res.json().api_key as string;
  });
  after(async () => env?.cleanup());

  const call = async () => {
    const res = await fetch(`${base}/v1/proxy/${conn}/items`, { headers: { authorization: `Bearer ${key}` } });
    const body = res.headers.get('content-type')?.includes('json') ? await res.json() : await res.text();
    return { status: res.status, body, requestId: res.headers.get('warrant-request-id') };
  };

  test('a store that stops answering: refused past the deadline; after it answers again the backlog is written and calls resume', async () => {
    assert.equal((await call()).status, 200);
    await env.warrant.auditQueue.flush();
    const served: string[] = [];
    const locker = new pg.Client({ connectionString: env.env.DATABASE_URL });
    await locker.connect();
    try {
      await locker.query('begin');
      await locker.query('lock table audit_events in access exclusive mode');
      // Calls are served (their entries wait) until an entry has waited past the deadline.
      const refused = await eventually(async () => {
        const r = await call();
        if (r.status === 200) served.push(r.requestId!);
        return r.status === 503 ? r : undefined;
      }, 30_000, 50);
      assert.equal((refused.body as { code: string }).code, 'unavailable');
      assert.ok(served.length >= 1, 'calls made before the deadline were served');
      const ready = await env.warrant.app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(ready.statusCode, 503);
      assert.equal(ready.json().code, 'unavailable');
    } finally {
      await locker.query('rollback').catch(() => {});
      await locker.end();
    }
    const ok = await eventually(async () => {
      const r = await call();
      if (r.status === 200) served.push(r.requestId!);
      return r.status === 200;
    }, 30_000, 100);
    assert.ok(ok);
    assert.equal((await env.warrant.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
    await env.warrant.auditQueue.flush();
    const entries = await env.warrant.audit.query({ type: 'proxy.call', limit: 1000 });
    const audited = new Set(entries.map((e) => e.data.request_id));
    for (const id of served) assert.ok(audited.has(id), `the served call ${id} is in the audit log`);
    assert.equal((await env.warrant.audit.verify()).ok, true);
  });
});
