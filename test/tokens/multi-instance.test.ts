import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startSandbox } from '../../src/sandbox/index.ts';
import { startLifecycle } from '../helpers/lifecycle.ts';
import { skipWithoutPostgres, skipWithoutRedis } from '../helpers/stores.ts';

const worker = fileURLToPath(new URL('../helpers/token-worker.ts', import.meta.url));

interface Report {
  uses: number;
  refreshedHere: number;
  distinctTokens: number;
  failures: string[];
  failureCount: number;
}

function runWorker(env: Record<string, string>): { ready: Promise<void>; done: Promise<Report> } {
  const child = spawn(process.execPath, ['--import', 'tsx', worker], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));
  child.stdout.on('data', (d) => {
    out += d;
    if (out.includes('ready\n')) markReady();
  });
  child.stderr.on('data', (d) => (err += d));
  const done = new Promise<Report>((resolve, reject) =>
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop()!;
      if (code !== 0) return reject(new Error(`worker exited ${code}: ${err.slice(-2000)}`));
      resolve(JSON.parse(line) as Report);
    }),
  );
  return { ready, done };
}

async function hammer(redis: boolean) {
  const lifetimeS = 3;
  const sandbox = await startSandbox({ accessTokenTtl: lifetimeS, rotateRefreshTokens: true });
  // The first instance connects the grant and creates the schema; two more processes join it.
  const first = await startLifecycle({ sharedSandbox: sandbox, store: 'postgres', redis, scheduler: true });
  try {
    const id = await first.connect();
    await first.warrant.tokens.getFreshToken(id);
    sandbox.resetStats();
    const env = { ...first.env, WORKER_CONNECTION: id, WORKER_MS: '16000', WORKER_CONCURRENCY: '25', WARRANT_SCHEDULER_INTERVAL_MS: '200' };
    const started = Date.now();
    const workers = [runWorker(env), runWorker(env)];
    const reports = await Promise.all(workers.map((w) => w.done));
    const elapsedS = (Date.now() - started) / 1000;
    const stats = sandbox.stats();
    const row = await first.warrant.connections.get(id);
    const refreshedByWorkers = reports.reduce((n, r) => n + r.refreshedHere, 0);
    console.log(
      `# ${redis ? 'redis' : 'postgres'} locks: ${reports.map((r) => r.uses).join('+')} uses, ${stats.refreshRequests} refreshes at the IdP ` +
        `(workers saw ${refreshedByWorkers} refreshed results, joined flights included) over ${elapsedS.toFixed(1)} s, reuse detected ${stats.reuseDetected}, refresh failures ${stats.refreshFailures}`,
    );
    assert.deepEqual(reports.map((r) => r.failureCount), [0, 0], JSON.stringify(reports.map((r) => r.failures)));
    assert.equal(stats.reuseDetected, 0, 'no refresh token was used twice');
    assert.equal(stats.refreshFailures, 0);
    assert.equal(row.status, 'active', 'the grant survived');
    // Each expiry is refreshed once: the count matches the elapsed time over the refresh interval
    // (the workers start a second or two into the window; the first instance's scheduler runs too).
    const expected = elapsedS / (lifetimeS * 0.75);
    assert.ok(stats.refreshRequests <= Math.ceil(expected) + 1, `${stats.refreshRequests} refreshes > ${expected.toFixed(1)} + 1`);
    assert.ok(stats.refreshRequests >= Math.floor(expected) - 2, `${stats.refreshRequests} refreshes < ${expected.toFixed(1)} - 2`);
    const t = await first.warrant.tokens.getFreshToken(id);
    const res = await fetch(`${sandbox.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${t.accessToken}` } });
    assert.equal(res.status, 200);
  } finally {
    await first.cleanup();
    await sandbox.close();
  }
}

describe('several Warrant processes on one store, hammering one rotating grant across expiries', () => {
  test('PostgreSQL advisory locks: exactly one refresh per expiry, no refresh-token reuse', { skip: skipWithoutPostgres, timeout: 90_000 }, () => hammer(false));
  test('Redis locks with fencing: exactly one refresh per expiry, no refresh-token reuse', { skip: skipWithoutPostgres || skipWithoutRedis, timeout: 90_000 }, () =>
    hammer(true),
  );
});
