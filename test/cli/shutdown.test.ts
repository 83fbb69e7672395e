import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { runWarrant, type Spawned } from '../helpers/process.ts';
import { eventually } from '../helpers/lifecycle.ts';

// `warrant serve` under SIGTERM: stop accepting, drain for at most WARRANT_SHUTDOWN_GRACE_SECONDS,
// exit 0 when everything drained and 1 when work had to be abandoned; a second signal exits at once.

const ADMIN_TOKEN = 'shutdown-test-admin-token-0123456789';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

let dir: string;
let hang: http.Server;
let slow: http.Server;
const hanging: http.ServerResponse[] = [];
let slowArrived = 0;

const listen = (server: http.Server) =>
  new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'warrant-shutdown-'));
  // An upstream that accepts and never answers.
  hang = http.createServer((_req, res) => void hanging.push(res));
  // A normal upstream that takes a moment, so calls are in flight when the signal comes.
  slow = http.createServer((_req, res) => {
    slowArrived++;
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'), 1_000);
  });
  const [hangPort, slowPort] = [await listen(hang), await listen(slow)];
  const provider = (id: string, port: number) => ({
    id,
    auth: 'api_key',
    environments: { production: { api_base_url: `http://127.0.0.1:${port}` } },
    scopes: { all: [{ method: '*', path: '/**' }] },
  });
  mkdirSync(join(dir, 'providers'));
  writeFileSync(join(dir, 'providers', 'hang.json'), JSON.stringify(provider('hang', hangPort)));
  writeFileSync(join(dir, 'providers', 'slow.json'), JSON.stringify(provider('slow', slowPort)));
});

after(async () => {
  for (const res of hanging) res.destroy();
  hang.closeAllConnections();
  slow.closeAllConnections();
  await Promise.all([new Promise((r) => hang.close(r)), new Promise((r) => slow.close(r))]);
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh server (own data dir) with an agent granted a connection to `provider`. */
async function serve(graceSeconds: number, provider: 'hang' | 'slow') {
  const data = mkdtempSync(join(dir, 'data-'));
  const p = runWarrant(['serve'], {
    WARRANT_DATA_DIR: data,
    WARRANT_MASTER_KEY: `k1:${randomBytes(32).toString('base64')}`,
    WARRANT_ADMIN_TOKEN: ADMIN_TOKEN,
    WARRANT_PORT: '0',
    WARRANT_PROVIDERS: join(dir, 'providers'),
    WARRANT_SHUTDOWN_GRACE_SECONDS: String(graceSeconds),
  });
  const [, address] = await p.waitFor(/"address":"(http:\/\/[^"]+)"/, 60_000);
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${address}${path}`, { method: 'POST', headers: admin, body: JSON.stringify(body) });
    assert.equal(res.status, 201, await res.clone().text());
    return (await res.json()) as Record<string, unknown>;
  };
  const conn = await post('/v1/connections', { provider, owner: 'ops@example.com', access_token: 'upstream-api-key', scopes: ['all'] });
  const agent = await post('/v1/agents', { name: 'a', owner: 'ops@example.com', grants: [{ connection: conn.id, scopes: ['all'] }] });
  const call = () =>
    fetch(`${address}/v1/proxy/${conn.id as string}/items`, { headers: { authorization: `Bearer ${agent.api_key as string}` } }).then(
      async (r) => (await r.arrayBuffer(), r.status),
      () => 'failed' as const,
    );
  return { p, address: address!, call, cleanup: () => rmSync(data, { recursive: true, force: true }) };
}

async function timedExit(p: Spawned, signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; ms: number }> {
  const t0 = Date.now();
  const code = await p.kill(signal);
  return { code, ms: Date.now() - t0 };
}

test('SIGTERM with no work in flight exits 0 at once', async () => {
  const s = await serve(10, 'slow');
  try {
    const { code, ms } = await timedExit(s.p);
    assert.equal(code, 0, s.p.stdout() + s.p.stderr());
    assert.ok(ms < 5_000, `exited after ${ms} ms`);
    assert.match(s.p.stdout(), /"msg":"shut down"/);
  } finally {
    s.cleanup();
  }
});

test('a proxied call to an upstream that never answers does not keep the process alive past the grace: exit 1, the abandoned work logged', async () => {
  // Reproduces issue 7 (2): close() awaited every in-flight request with no deadline, so a hung
  // upstream kept a SIGTERM'd process alive (here until the 15 s upstream timeout, then exit 0).
  const s = await serve(2, 'hang');
  try {
    const before = hanging.length;
    const pending = s.call();
    await eventually(() => hanging.length > before, 20_000);
    const { code, ms } = await timedExit(s.p);
    assert.equal(code, 1, 'work was abandoned: non-zero');
    assert.ok(ms >= 1_500, `it drained for the grace first (${ms} ms)`);
    assert.ok(ms < 2_000 + 4_000, `exited after ${ms} ms, grace 2 s`);
    assert.match(s.p.stdout(), /shutdown grace ran out: work abandoned/);
    assert.match(s.p.stdout(), /http requests \(1 in flight\)/);
    await pending;
  } finally {
    s.cleanup();
  }
});

test('a second SIGTERM exits at once, non-zero, without waiting for the grace', async () => {
  const s = await serve(60, 'hang');
  try {
    const before = hanging.length;
    const pending = s.call();
    await eventually(() => hanging.length > before, 20_000);
    s.p.child.kill('SIGTERM');
    await s.p.waitFor(/shutting down: draining in-flight work/);
    const { code, ms } = await timedExit(s.p, 'SIGTERM');
    assert.equal(code, 1);
    assert.ok(ms < 3_000, `exited ${ms} ms after the second signal (grace 60 s)`);
    assert.match(s.p.stderr(), /SIGTERM again: exiting now/);
    await pending;
  } finally {
    s.cleanup();
  }
});

test('SIGTERM under load: every in-flight call to a normal upstream is answered, new connections are refused, exit 0 within the grace', async () => {
  const s = await serve(8, 'slow');
  try {
    const before = slowArrived;
    const calls = Array.from({ length: 12 }, () => s.call());
    await eventually(() => slowArrived - before === 12, 20_000);
    const t0 = Date.now();
    s.p.child.kill('SIGTERM');
    await s.p.waitFor(/shutting down/);
    const late = await fetch(`${s.address}/healthz`).then(
      (r) => r.status,
      () => 'refused' as const,
    );
    assert.notEqual(late, 200, 'no new work once draining');
    assert.deepEqual(await Promise.all(calls), Array(12).fill(200), 'in-flight calls drained');
    const code = await s.p.exit();
    const ms = Date.now() - t0;
    assert.equal(code, 0, s.p.stdout());
    assert.ok(ms < 8_000, `exited after ${ms} ms, grace 8 s`);
  } finally {
    s.cleanup();
  }
});
