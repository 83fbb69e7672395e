import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, sleep, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { skipWithoutPostgres, skipWithoutRedis } from '../helpers/stores.ts';

const CONNECTIONS = 64;
const TTL_SECONDS = 4;

async function agentFor(env: LifecycleEnv, connections: string[]): Promise<string> {
  const res = await env.warrant.app.inject({
    method: 'POST',
    url: '/v1/agents',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    payload: { name: 'contention', owner: 'alice@example.com', grants: connections.map((connection) => ({ connection, scopes: ['items:read'] })) },
  });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().api_key as string;
}

/** Every connection's token has expired; one proxied call per connection, all at once. */
async function expireThenCallAll(env: LifecycleEnv): Promise<{ statuses: number[]; slowestMs: number }> {
  const ids: string[] = [];
  for (let i = 0; i < CONNECTIONS; i += 8) {
    ids.push(...(await Promise.all(Array.from({ length: 8 }, (_, j) => env.connect('alice@example.com', ['items:read'])))));
  }
  const key = await agentFor(env, ids);
  await sleep(TTL_SECONDS * 1000 + 500);
  const base = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
  const started = Date.now();
  let slowestMs = 0;
  const statuses = await Promise.all(
    ids.map(async (id) => {
      const res = await fetch(`${base}/v1/proxy/${id}/items`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(15_000) });
      await res.arrayBuffer();
      slowestMs = Math.max(slowestMs, Date.now() - started);
      return res.status;
    }),
  );
  return { statuses, slowestMs };
}

// Regression: with PostgreSQL advisory locks and no Redis, 32 connections expiring at once hung
// every request forever: each lock waiter held a pooled connection while polling, and the holder
// needed one more from the same exhausted pool for its work.
describe('many connections expiring at once on PostgreSQL', { skip: skipWithoutPostgres }, () => {
  for (const redis of [false, true]) {
    test(`${CONNECTIONS} concurrent proxied calls all answer 2xx within 10 s (${redis ? 'Redis locks' : 'PostgreSQL locks, no Redis'})`, { skip: redis && skipWithoutRedis }, async () => {
      const env = await startLifecycle({
        store: 'postgres',
        redis,
        sandbox: { accessTokenTtl: TTL_SECONDS, rotateRefreshTokens: true },
        env: { WARRANT_DB_POOL_SIZE: '10' },
      });
      try {
        env.sandbox.resetStats();
        const { statuses, slowestMs } = await expireThenCallAll(env);
        const bad = statuses.filter((s) => s < 200 || s >= 300);
        assert.deepEqual(bad, [], `non-2xx answers: ${bad.join(', ')}`);
        assert.ok(slowestMs < 10_000, `slowest call took ${slowestMs} ms`);
        const stats = env.sandbox.stats();
        assert.equal(stats.refreshRequests, CONNECTIONS, "one refresh per connection");
        assert.equal(stats.reuseDetected, 0, 'no refresh token was used twice');
      } finally {
        await env.cleanup();
      }
    });
  }
});

// Regression: a pool with no free connection made requests queue forever; now the wait is bounded
// by WARRANT_DB_ACQUIRE_TIMEOUT_MS and answers a typed 503 the agent can retry.
describe('a saturated PostgreSQL pool', { skip: skipWithoutPostgres }, () => {
  test('answers 503 unavailable within the acquire timeout, and serves again once a connection is free', async () => {
    const env = await startLifecycle({ store: 'postgres', env: { WARRANT_DB_POOL_SIZE: '1', WARRANT_DB_ACQUIRE_TIMEOUT_MS: '300' } });
    try {
      const id = await env.connect('alice@example.com', ['items:read']);
      const key = await agentFor(env, [id]);
      const base = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
      const call = () => fetch(`${base}/v1/proxy/${id}/items`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(10_000) });
      let release!: () => void;
      const holding = env.warrant.store.db.connection().execute(() => new Promise<void>((r) => (release = r)));
      await sleep(100);
      const started = Date.now();
      const res = await call();
      const elapsed = Date.now() - started;
      const body = await res.json();
      assert.equal(res.status, 503, JSON.stringify(body));
      assert.equal(body.code, 'unavailable');
      assert.ok(res.headers.get('retry-after'), 'tells the agent when to retry');
      assert.ok(elapsed < 3_000, `answered after ${elapsed} ms`);
      release();
      await holding;
      const again = await call();
      assert.equal(again.status, 200, await again.text());
    } finally {
      await env.cleanup();
    }
  });
});
