import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { startSandbox } from '../../src/sandbox/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant, type Warrant } from '../../src/warrant.ts';
import { startLifecycle, sleep } from '../helpers/lifecycle.ts';
import { captureLogger } from '../helpers/app.ts';
import { skipWithoutPostgres, skipWithoutRedis } from '../helpers/stores.ts';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** A Redis of the test's own, so it can be flushed and restarted without touching anyone else's. */
async function privateRedis(port: number): Promise<{ stop(): Promise<void> }> {
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  for (let i = 0; ; i++) {
    try {
      await client.connect();
      await client.ping();
      break;
    } catch {
      if (i > 50) throw new Error('redis-server did not start');
      await sleep(100);
    }
  }
  client.disconnect();
  return {
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

// Regression (security review, high 3): the fencing token came from a Redis counter. A FLUSHALL
// or restart reset it, the store then refused the write of a refresh the IdP had already rotated,
// the rotated refresh token was thrown away, and the next refresh replayed the consumed one:
// reuse detected, grant revoked, connection `reauth_required`.
describe('a lock-service reset in the middle of refresh traffic', { skip: skipWithoutPostgres || skipWithoutRedis || (!hasRedisServer && 'redis-server is not installed') }, () => {
  test('Redis FLUSHALL and a Redis restart: no reauth_required, no refresh-token reuse at the IdP', { timeout: 120_000 }, async () => {
    const port = await freePort();
    let redis = await privateRedis(port);
    const sandbox = await startSandbox({ accessTokenTtl: 2, rotateRefreshTokens: true });
    const first = await startLifecycle({ sharedSandbox: sandbox, store: 'postgres', scheduler: true, env: { REDIS_URL: `redis://127.0.0.1:${port}`, WARRANT_SCHEDULER_INTERVAL_MS: '100' } });
    let second: Warrant | undefined;
    try {
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push(await first.connect(`owner${i}@example.com`, ['items:read']));
      second = await createWarrant(loadConfig(first.env), { logger: captureLogger('error').logger, notice: () => {}, scheduler: false });
      second.scheduler.start();
      // Refreshes take a while at the IdP, so a reset lands while some are in flight.
      sandbox.setFaults({ tokenEndpoint: { delayMs: 150 } });
      sandbox.resetStats();
      let stop = false;
      const failures: string[] = [];
      const workers = [first.warrant, second].flatMap((w) =>
        ids.map(async (id) => {
          while (!stop) {
            try {
              const t = await w.tokens.getFreshToken(id, { minTtlSeconds: 1.2 });
              const res = await fetch(`${sandbox.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${t.accessToken}` } });
              await res.arrayBuffer();
              if (res.status !== 200 && res.status !== 401) failures.push(`api ${res.status}`);
            } catch (err) {
              const code = (err as { code?: string }).code;
              // A refresh that lost its lock mid-way may ask the caller to retry; a dead grant may not.
              if (code !== 'refresh_unavailable') failures.push(String(code ?? err));
            }
            await sleep(20);
          }
        }),
      );
      const admin = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
      for (let i = 0; i < 6; i++) {
        await sleep(700);
        await admin.flushall();
      }
      admin.disconnect();
      await sleep(500);
      await redis.stop();
      await sleep(1_500); // locks fall back to PostgreSQL meanwhile
      redis = await privateRedis(port);
      await sleep(3_000);
      stop = true;
      await Promise.all(workers);

      const stats = sandbox.stats();
      assert.ok(stats.refreshRequests >= 12, `refresh traffic ran (${stats.refreshRequests} refreshes)`);
      assert.equal(stats.reuseDetected, 0, 'no refresh token was presented twice');
      assert.deepEqual(failures.filter((f) => f.includes('reauth_required')), []);
      for (const id of ids) assert.equal((await first.warrant.connections.get(id)).status, 'active', `${id} kept its grant`);
    } finally {
      sandbox.setFaults({});
      await second?.close();
      await first.cleanup();
      await sandbox.close();
      await redis.stop();
    }
  });
});
