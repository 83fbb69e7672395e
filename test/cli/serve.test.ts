import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runWarrant } from '../helpers/process.ts';

test('warrant serve starts on a fresh data dir: key generated 0600 with one warning, admin token printed once, /healthz answers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-serve-'));
  try {
    const first = runWarrant(['serve'], { WARRANT_DATA_DIR: dir, WARRANT_PORT: '0' });
    const [, address] = await first.waitFor(/"address":"(http:\/\/[^"]+)"/);
    const health = await fetch(`${address}/healthz`);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const [, token] = await first.waitFor(/Admin token \(shown once, store it now\): (wat_[A-Za-z0-9_-]+)/);
    assert.match(first.stderr(), /WARNING: no WARRANT_MASTER_KEY set/);
    assert.equal(statSync(join(dir, 'master.key')).mode & 0o777, 0o600);
    const ok = await fetch(`${address}/v1/providers`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    assert.equal(await first.kill(), 0, 'SIGTERM shuts down cleanly');
    assert.ok(!first.stdout().includes(token!), 'the admin token never reaches the log stream');
    assert.ok(!readFileSync(join(dir, 'warrant.db')).includes(Buffer.from(token!)), 'stored hashed');

    const second = runWarrant(['serve'], { WARRANT_DATA_DIR: dir, WARRANT_PORT: '0' });
    const [, address2] = await second.waitFor(/"address":"(http:\/\/[^"]+)"/);
    const again = await fetch(`${address2}/v1/providers`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(again.status, 200, 'the token printed once keeps working');
    await second.kill();
    assert.doesNotMatch(second.stderr(), /Admin token|WARNING: no WARRANT_MASTER_KEY/, 'shown once, warned once');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bad setting stops start-up with a message naming the variable', async () => {
  const p = runWarrant(['serve'], { WARRANT_PORT: 'nope', WARRANT_DATA_DIR: join(tmpdir(), 'never-created') });
  assert.equal(await p.exit(), 1);
  assert.match(p.stderr(), /WARRANT_PORT/);
});

test('--help lists the commands', async () => {
  const p = runWarrant(['--help'], {});
  assert.equal(await p.exit(), 0);
  for (const c of ['serve', 'sandbox', 'keys', 'providers']) assert.match(p.stdout(), new RegExp(`\\b${c}\\b`));
});
