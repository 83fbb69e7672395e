import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant } from '../../src/warrant.ts';
import { startLifecycle, sleep } from '../helpers/lifecycle.ts';
import { captureLogger } from '../helpers/app.ts';

const worker = fileURLToPath(new URL('../helpers/token-worker.ts', import.meta.url));

// Regression guard for "a crash mid-refresh burns the rotating refresh token": the rotated token
// must be committed atomically with the new access token, and a refresh the IdP never completed
// must leave the stored grant usable. The one window no client can close — the IdP rotated but
// the process died before committing — is documented in docs/token-lifecycle.md.
test('a process killed with SIGKILL during a refresh loses no grant: after restart the connection works', { timeout: 60_000 }, async () => {
  const env = await startLifecycle({ sandbox: { accessTokenTtl: 3, rotateRefreshTokens: true } });
  const id = await env.connect();
  await env.warrant.tokens.getFreshToken(id);
  await env.warrant.close(); // the data dir now belongs to the process we will kill

  // Every refresh hangs at the IdP for 20 s: the worker is surely inside one when killed.
  env.sandbox.setFaults({ tokenEndpoint: { delayMs: 20_000 } });
  env.sandbox.resetStats();
  const child = spawn(process.execPath, ['--import', 'tsx', worker], {
    env: { PATH: process.env.PATH, ...env.env, WORKER_CONNECTION: id, WORKER_MS: '60000', WORKER_CONCURRENCY: '3' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((r) => child.on('exit', r));
  await new Promise<void>((resolve) => child.stdout.on('data', (d) => String(d).includes('ready') && resolve()));
  await sleep(3_500); // past the due time: the worker's refresh is in flight, held at the IdP
  assert.equal(env.sandbox.stats().tokenRequests, 0, 'the IdP has answered nothing yet');
  child.kill('SIGKILL');
  await exited;
  env.sandbox.setFaults({});

  const logs = captureLogger('warn');
  const restarted = await createWarrant(loadConfig(env.env), { logger: logs.logger, notice: () => {}, scheduler: false });
  try {
    const t = await restarted.tokens.getFreshToken(id);
    const res = await fetch(`${env.sandbox.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${t.accessToken}` } });
    assert.equal(res.status, 200);
    assert.equal((await restarted.connections.get(id)).status, 'active');
    assert.equal(env.sandbox.stats().reuseDetected, 0);
  } finally {
    await restarted.close();
    env.sandbox.setFaults({});
    await env.sandbox.close();
  }
});
