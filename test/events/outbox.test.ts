import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { createStore, type Store } from '../../src/store/index.ts';
import { parseKeyRing } from '../../src/crypto/index.ts';
import { createAuditLog, createEventBus, createWebhooks, messageId, sign, type AuditLog, type Webhooks } from '../../src/events/index.ts';
import { eventually, sleep } from '../helpers/lifecycle.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { dropSchema, openTestStore, storeKinds, testDatabaseUrl, testKeyRing, type StoreKind, type TestStore } from '../helpers/stores.ts';

// The webhook outbox: a delivery row commits in the same transaction as the audit entry that
// causes it, so no kill loses an alert and none is sent twice under a different webhook-id.

const child = fileURLToPath(new URL('../helpers/outbox-child.ts', import.meta.url));
const silent = pino({ level: 'silent' });
/** The receiver is on loopback, which webhooks refuse unless allowed. */
const loopback = ['127.0.0.0/8'];

/** Where a killed process and its successor both find the store. */
function storeLocation(kind: StoreKind['name']): { env: Record<string, string>; open(): Promise<Store>; remove(): Promise<void> } {
  const ringSpec = `k1:${randomBytes(32).toString('base64')}`;
  const ring = parseKeyRing(ringSpec);
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'warrant-outbox-'));
    return {
      env: { OUTBOX_RING: ringSpec, OUTBOX_DATA_DIR: dir },
      open: () => createStore({ dataDir: dir, ring: { current: () => ring } }),
      remove: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const schema = `t_${randomBytes(6).toString('hex')}`;
  return {
    env: { OUTBOX_RING: ringSpec, OUTBOX_DATABASE_URL: testDatabaseUrl!, OUTBOX_PG_SCHEMA: schema },
    open: () => createStore({ databaseUrl: testDatabaseUrl!, pgSchema: schema, ring: { current: () => ring }, poolSize: 4 }),
    remove: () => dropSchema(schema),
  };
}

/** Runs the outbox child until it has committed its events; resolves with what it printed. */
async function runChild(env: Record<string, string>) {
  const proc = spawn(process.execPath, ['--import', 'tsx', child], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the child printed nothing in 90 s; stderr=${err}`)), 90_000);
    proc.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) (clearTimeout(timer), resolve(out.split('\n')[0]!));
    });
    proc.on('exit', (code) => (clearTimeout(timer), reject(new Error(`the child exited ${code}; stderr=${err}`))));
  }).catch((e: unknown) => {
    proc.kill('SIGKILL');
    throw e;
  });
  return {
    ...(JSON.parse(line) as { hook: string; events: [string, string] }),
    /** SIGKILL; also run in `finally`, so a failed test leaves no process behind. */
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

for (const kind of storeKinds) {
  describe(`webhook outbox (${kind.name})`, { skip: kind.skip }, () => {
    let ts: TestStore;
    let audit: AuditLog;
    let webhooks: Webhooks;
    let receiver: Receiver;
    const ring = testKeyRing();
    const queued = (eventId: string) => ts.store.db.selectFrom('webhook_deliveries').selectAll().where('event_id', '=', eventId).orderBy('id').execute();
    const ids = (hooks: string[], eventId: string) => hooks.map((h) => messageId(h, eventId)).sort();

    before(async () => {
      ts = await openTestStore(kind.name, ring);
      // sqliteFile: on SQLite, appends outside a caller's transaction go through the writer thread.
      audit = createAuditLog({ db: ts.store.db, dialect: ts.store.dialect, sqliteFile: ts.store.sqliteFile, now: Date.now });
      // Never started: nothing but the appending transaction can queue a delivery here.
      webhooks = createWebhooks({ store: ts.store, bus: createEventBus(), audit, logger: silent, allowedNetworks: loopback });
      receiver = await startReceiver();
    });
    after(async () => {
      await webhooks?.stop();
      await audit?.close();
      await receiver?.close();
      await ts?.cleanup();
    });

    test('an event commits with its deliveries: the rows exist when the append returns, before any bus handler or worker runs', async () => {
      // Regression: deliveries were inserted by a bus subscriber after the event's commit; the
      // rows were missing right after the append, and a kill in between lost the alert for good.
      const a = await webhooks.create(`${receiver.url}/a`, ['connection.*']);
      const b = await webhooks.create(`${receiver.url}/b`, ['connection.reauth_required', '*']);
      await webhooks.create(`${receiver.url}/c`, ['agent.*']);
      const before = Date.now();
      const [inTrx] = await ts.store.transaction((trx) => audit.append({ type: 'connection.reauth_required', actor: 'scheduler', subject: 'connection:con_a' }, trx));
      const rows = await queued(inTrx!.id);
      assert.deepEqual(rows.map((r) => r.id), ids([a.id, b.id], inTrx!.id), 'one row per matching webhook, id = messageId(webhook, event)');
      for (const r of rows) {
        assert.equal(r.status, 'pending');
        assert.equal(r.attempts, 0);
        assert.ok(r.next_attempt_at! >= before && r.next_attempt_at! <= Date.now(), 'due at once');
      }
      // Outside a caller's transaction (on SQLite: the embedded writer thread's own connection).
      const [own] = await audit.append({ type: 'connection.recovered', actor: 'scheduler', subject: 'connection:con_a' });
      assert.deepEqual((await queued(own!.id)).map((r) => r.id), ids([a.id, b.id], own!.id));
      // `*` matched the webhooks' own creation too, in the creating transaction.
      const [created] = await audit.query({ type: 'webhook.created', subject: `webhook:${b.id}` });
      assert.deepEqual((await queued(created!.id)).map((r) => r.id), ids([b.id], created!.id));
    });

    test('a transaction that rolls back leaves neither the event nor its deliveries', async () => {
      await webhooks.create(`${receiver.url}/rollback`, ['connection.*']);
      let eventId = '';
      await assert.rejects(
        ts.store.transaction(async (trx) => {
          eventId = (await audit.append({ type: 'connection.revoked', actor: 'admin', subject: 'connection:con_r' }, trx))[0]!.id;
          throw new Error('the change failed after its audit entry');
        }),
        /the change failed/,
      );
      assert.ok(eventId);
      assert.deepEqual(await queued(eventId), []);
    });

    test('per-call records (proxy.call, token.*) are never queued, even for `*`; disabled webhooks get nothing', async () => {
      const all = await webhooks.create(`${receiver.url}/all`, ['*']);
      const off = await webhooks.create(`${receiver.url}/off`, ['*']);
      await ts.store.db.updateTable('webhooks').set({ status: 'disabled' }).where('id', '=', off.id).execute();
      const entries = await audit.append([
        { type: 'proxy.call', actor: 'agent:agt_x', subject: 'connection:con_p', data: { status: 200 } },
        { type: 'token.exported', actor: 'agent:agt_x', subject: 'connection:con_p' },
        { type: 'token.leased', actor: 'agent:agt_x', subject: 'connection:con_p' },
        { type: 'agent.created', actor: 'admin', subject: 'agent:agt_x' },
      ]);
      for (const e of entries.slice(0, 3)) assert.deepEqual(await queued(e.id), [], e.type);
      const agentRows = await queued(entries[3]!.id);
      assert.ok(agentRows.some((r) => r.webhook_id === all.id));
      assert.ok(!agentRows.some((r) => r.webhook_id === off.id), 'a disabled webhook is not queued');
    });

    test('a webhook created on one instance gets deliveries for events another instance commits right after', async () => {
      // Two connections to one store: on PostgreSQL a second instance's pool; on SQLite the
      // embedded writer thread's connection. Nothing is cached, so there is no window to wait out.
      const other: { store?: Store } = {};
      const otherAudit =
        kind.name === 'postgres'
          ? createAuditLog({
              db: (other.store = await createStore({ databaseUrl: testDatabaseUrl!, pgSchema: ts.location, ring: { current: () => ring }, poolSize: 2 })).db,
              dialect: 'postgres',
              now: Date.now,
            })
          : audit;
      try {
        const hook = await webhooks.create(`${receiver.url}/fresh`, ['agent.revoked']);
        const [e] = await otherAudit.append({ type: 'agent.revoked', actor: 'admin', subject: 'agent:agt_y' });
        const rows = (await queued(e!.id)).filter((r) => r.webhook_id === hook.id);
        assert.deepEqual(rows.map((r) => r.id), [messageId(hook.id, e!.id)]);
      } finally {
        await other.store?.close();
      }
    });

    test('SIGKILL right after the commit: the next process delivers each alert exactly once, webhook-id = messageId(webhook, event)', { timeout: 240_000 }, async () => {
      // Regression: the child commits two events and is killed before publishing them; with the
      // post-commit fan-out no delivery row existed and the alerts were lost.
      const where = storeLocation(kind.name);
      let store: Store | undefined;
      let worker: Webhooks | undefined;
      let spawned: Awaited<ReturnType<typeof runChild>> | undefined;
      try {
        const killed = (spawned = await runChild({ ...where.env, OUTBOX_HOOK_URL: `${receiver.url}/killed` }));
        await killed.kill();
        store = await where.open();
        const pending = await store.db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', killed.hook).execute();
        assert.deepEqual(pending.map((r) => r.id).sort(), killed.events.map((e) => messageId(killed.hook, e)).sort(), 'the alerts committed with their events');

        worker = createWebhooks({ store, bus: createEventBus(), logger: silent, pollIntervalMs: 50, allowedNetworks: loopback });
        worker.start();
        await eventually(() => receiver.at('/killed').length >= 2, 60_000);
        await sleep(1_000); // room for a duplicate, were there one
        const got = receiver.at('/killed');
        assert.equal(got.length, 2, 'each alert exactly once');
        const secret = (await store.vault.get({ scope: 'webhook', ref: killed.hook, field: 'secret' }))!;
        for (const r of got) {
          const eventId = JSON.parse(r.body).data.id as string;
          assert.ok(killed.events.includes(eventId));
          assert.equal(r.headers['webhook-id'], messageId(killed.hook, eventId));
          assert.equal(r.headers['webhook-signature'], sign(secret, messageId(killed.hook, eventId), Number(r.headers['webhook-timestamp']), r.body));
        }
        await eventually(async () => {
          const rows = await store!.db.selectFrom('webhook_deliveries').select('status').where('webhook_id', '=', killed.hook).execute();
          return rows.every((row) => row.status === 'delivered');
        }, 10_000);
      } finally {
        await spawned?.kill();
        await worker?.stop();
        await store?.close();
        await where.remove();
      }
    });

    test('SIGKILL during a delivery (received, not yet marked delivered): redelivered with the same webhook-id', { timeout: 240_000 }, async () => {
      const where = storeLocation(kind.name);
      let store: Store | undefined;
      let worker: Webhooks | undefined;
      let spawned: Awaited<ReturnType<typeof runChild>> | undefined;
      try {
        receiver.answer('/inflight', 'hang'); // received, never answered: the row stays claimed
        const killed = (spawned = await runChild({ ...where.env, OUTBOX_HOOK_URL: `${receiver.url}/inflight`, OUTBOX_MODE: 'deliver', OUTBOX_LEASE_MS: '3000' }));
        const idsAt = (from = 0) => receiver.at('/inflight').slice(from).map((r) => r.headers['webhook-id'] as string);
        await eventually(() => new Set(idsAt()).size === 2, 60_000);
        await killed.kill();
        const sentBefore = receiver.at('/inflight').length; // 2, or more if the child's own lease ran out on a loaded machine
        receiver.answer('/inflight', 200);

        store = await where.open();
        const claimed = await store.db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', killed.hook).execute();
        assert.ok(claimed.every((r) => r.status === 'pending' && r.attempts === 0), 'the killed attempt was never recorded');
        worker = createWebhooks({ store, bus: createEventBus(), logger: silent, pollIntervalMs: 50, allowedNetworks: loopback });
        worker.start(); // the rows come due again when the dead process's 3 s lease ends
        await eventually(async () => {
          const rows = await store!.db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', killed.hook).execute();
          return rows.length === 2 && rows.every((r) => r.status === 'delivered' && r.attempts === 1);
        }, 60_000);
        await sleep(500);
        const expected = killed.events.map((e) => messageId(killed.hook, e)).sort();
        assert.deepEqual([...new Set(idsAt())].sort(), expected, 'every attempt, before and after the kill, carries messageId(webhook, event)');
        assert.deepEqual(idsAt(sentBefore).sort(), expected, 'each alert sent once more after the restart, with the same webhook-id');
      } finally {
        await spawned?.kill();
        await worker?.stop();
        await store?.close();
        await where.remove();
      }
    });
  });
}
