import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { eventually, startLifecycle, sleep, adminCall, proxiedStatus, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { skipWithoutPostgres, skipWithoutRedis } from '../helpers/stores.ts';

// Issue 13: the proxy serves agent keys, connection metadata and tokens from memory, invalidated
// through agents/invalidation.ts. A revocation made on instance A must stop calls made through
// instance B within 1 s while B is under load, and a warm call must read nothing from the store.
// A feed B cannot read (here: stopped) makes B read the store per call, never a stale allow.

/** Statements that read or write what a proxied call could need (not the audit, not the feed's poll). */
const CALL_TABLES = /"(agents|grants|connections|secrets|connection_shares|owners)"/;
const CALLERS = 6;
/** The load is the point: no 429 from the per-agent and per-connection rates (0 = off). */
const noRateLimits = { WARRANT_AGENT_RATE_PER_SECOND: '0', WARRANT_CONNECTION_RATE_PER_SECOND: '0' };

interface Call {
  start: number;
  end: number;
  status: number;
}

/**
 * Keeps CALLERS concurrent callers busy on `env`, runs `change` (answering once its 200 came),
 * and goes on until every caller was refused or 5 s passed, then 500 ms more.
 */
async function underLoad(env: LifecycleEnv, key: string, connection: string, change: () => Promise<void>) {
  const calls: Call[] = [];
  let stop = false;
  const refusedBy = new Set<number>();
  const loops = Array.from({ length: CALLERS }, async (_, i) => {
    while (!stop) {
      const start = performance.now();
      const status = await proxiedStatus(env, key, connection);
      calls.push({ start, end: performance.now(), status });
      if (status !== 200) refusedBy.add(i);
    }
  });
  await sleep(300);
  const okBefore = calls.filter((c) => c.status === 200).length;
  await change();
  const answeredAt = performance.now();
  const deadline = answeredAt + 5_000;
  while (refusedBy.size < CALLERS && performance.now() < deadline) await sleep(20);
  await sleep(500);
  stop = true;
  await Promise.all(loops);
  return { calls, okBefore, answeredAt };
}

async function twoInstances(store: 'sqlite' | 'postgres', redis: boolean, sandbox: Sandbox, counted: string[]): Promise<[LifecycleEnv, LifecycleEnv]> {
  const a = await startLifecycle({ sharedSandbox: sandbox, store, redis, env: noRateLimits });
  const b = await startLifecycle({
    sharedSandbox: sandbox,
    store,
    redis,
    env: noRateLimits,
    shared: { dataDir: a.env.WARRANT_DATA_DIR, pgSchema: a.env.WARRANT_TEST_PG_SCHEMA, masterKey: a.env.WARRANT_MASTER_KEY!, providersFile: a.providersFile },
    onStoreQuery: (sql) => {
      if (CALL_TABLES.test(sql)) counted.push(sql);
    },
  });
  return [a, b];
}

const variants = [
  { name: 'PostgreSQL, no Redis (the store carries it)', store: 'postgres' as const, redis: false, skip: skipWithoutPostgres },
  { name: 'PostgreSQL and Redis (pub/sub carries it)', store: 'postgres' as const, redis: true, skip: skipWithoutPostgres || skipWithoutRedis },
  { name: 'SQLite shared by two instances', store: 'sqlite' as const, redis: false, skip: false as const },
];

for (const v of variants) {
  describe(`proxy caches across two instances: ${v.name}`, { skip: v.skip }, () => {
    let sandbox: Sandbox;
    let a: LifecycleEnv;
    let b: LifecycleEnv;
    const counted: string[] = [];
    before(async () => {
      sandbox = await startSandbox({ accessTokenTtl: 600 });
      [a, b] = await twoInstances(v.store, v.redis, sandbox, counted);
    });
    after(async () => {
      await b?.cleanup();
      await a?.cleanup();
      await sandbox?.close();
    });

    /** A connection and an agent made on A, once B's poll has seen the connect's announcement (it drops B's connection caches). */
    async function agentOn(owner: string): Promise<{ connection: string; agent: { id: string; api_key: string } }> {
      let drops = 0;
      const off = b.warrant.keyInvalidations.connections.subscribe((ids) => (drops += ids ? 0 : 1));
      try {
        const connection = await a.connect(owner);
        const r = await adminCall(a, 'POST', '/v1/agents', { name: 'loaded', owner, grants: [{ connection, scopes: ['items:read'] }] });
        assert.equal(r.status, 201, JSON.stringify(r.json));
        await eventually(() => drops > 0, 5_000, 10);
        return { connection, agent: r.json };
      } finally {
        off();
      }
    }

    test('warm calls read nothing from the store', async () => {
      const { connection, agent } = await agentOn('wanda@example.com');
      await eventually(async () => (await proxiedStatus(b, agent.api_key, connection)) === 200, 5_000, 100);
      for (let i = 0; i < 3; i++) assert.equal(await proxiedStatus(b, agent.api_key, connection), 200);
      await b.warrant.agents.settle(); // the first call's last_used_at write
      counted.length = 0;
      for (let i = 0; i < 20; i++) assert.equal(await proxiedStatus(b, agent.api_key, connection), 200);
      const statuses = await Promise.all(Array.from({ length: 40 }, () => proxiedStatus(b, agent.api_key, connection)));
      assert.ok(statuses.every((s) => s === 200), statuses.join());
      assert.deepEqual(counted, [], `${counted.length} store statement(s) for 60 warm calls`);
    });

    test(`an agent revoked on A: B under load (${CALLERS} callers) refuses within 1 s of the answer, and never answers 200 after`, async () => {
      const { connection, agent } = await agentOn('alex@example.com');
      // A key made on A is known to B within a second (auth.ts, knownIdsSyncIntervalMs).
      await eventually(async () => (await proxiedStatus(b, agent.api_key, connection)) === 200, 5_000, 100);
      const run = await underLoad(b, agent.api_key, connection, async () => {
        const r = await adminCall(a, 'DELETE', `/v1/agents/${agent.id}`);
        assert.equal(r.status, 200, JSON.stringify(r.json));
      });
      assertPrompt(run, [401], []);
    });

    test(`a connection revoked on A: B under load refuses its calls within 1 s of the answer, and never answers 200 after`, async () => {
      const { connection, agent } = await agentOn('connie@example.com');
      await eventually(async () => (await proxiedStatus(b, agent.api_key, connection)) === 200, 5_000, 100);
      const run = await underLoad(b, agent.api_key, connection, async () => {
        const r = await adminCall(a, 'DELETE', `/v1/connections/${connection}`);
        assert.equal(r.status, 200, JSON.stringify(r.json));
      });
      // 404: the connection is gone (B's key cache may still list the grant; the metadata read
      // refuses). While A revokes at the IdP, before the row goes, B's calls may meet the dead
      // grant upstream: refused too (502 upstream_auth_failed, 503 refresh_unavailable).
      assertPrompt(run, [404], [403, 502, 503]);
    });

    test('fail safe: while B cannot read the feed, every call reads the store, so a revocation on A bites on the next call', async () => {
      const { connection, agent } = await agentOn('fiona@example.com');
      await eventually(async () => (await proxiedStatus(b, agent.api_key, connection)) === 200, 5_000, 100);
      await b.warrant.keyInvalidations.stop(); // as a store B cannot read: the feed is not current
      assert.equal(b.warrant.keyInvalidations.current(), false);
      counted.length = 0;
      assert.equal(await proxiedStatus(b, agent.api_key, connection), 200);
      assert.ok(counted.length >= 2, `${counted.length} statement(s): the key and the connection are read again`);
      const r = await adminCall(a, 'DELETE', `/v1/agents/${agent.id}`);
      assert.equal(r.status, 200);
      assert.equal(await proxiedStatus(b, agent.api_key, connection), 401, 'the next call through B is refused');
    });
  });
}

/** `refusals`: what the change itself causes (timed); `alsoRefused`: other refusals on the way. */
function assertPrompt(run: Awaited<ReturnType<typeof underLoad>>, refusals: number[], alsoRefused: number[]): void {
  const { calls, okBefore, answeredAt } = run;
  const firstRefusal = calls.filter((c) => refusals.includes(c.status)).sort((x, y) => x.end - y.end)[0];
  assert.ok(okBefore >= CALLERS, `${okBefore} calls answered 200 before the change: the load ran`);
  assert.ok(firstRefusal, 'B refused a call after the change');
  const took = firstRefusal.end - answeredAt;
  console.log(`# first refusal ${Math.round(took)} ms after the answer; ${calls.length} calls`);
  assert.ok(took < 1_000, `first refusal ${Math.round(took)} ms after the answer`);
  const lateOk = calls.filter((c) => c.status === 200 && c.start > firstRefusal.end);
  assert.equal(lateOk.length, 0, `${lateOk.length} call(s) started after the first refusal answered 200`);
  const odd = calls.filter((c) => c.status !== 200 && !refusals.includes(c.status) && !alsoRefused.includes(c.status));
  assert.deepEqual(odd.map((c) => c.status), [], 'refusals only');
}
