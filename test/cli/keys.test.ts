import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant } from '../../src/warrant.ts';
import { captureLogger } from '../helpers/app.ts';
import { runWarrant } from '../helpers/process.ts';

test('warrant keys rotate, online, in embedded mode: a new key, every secret re-wrapped and readable by the running server, the old key retired and dropped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-keys-'));
  const env = { WARRANT_DATA_DIR: dir, WARRANT_ADMIN_TOKEN: 'x'.repeat(32) };
  const running = await createWarrant(loadConfig(env), { logger: captureLogger().logger, notice: () => {} });
  try {
    for (let i = 0; i < 50; i++) await running.store.vault.put({ scope: 'connection', ref: `con_${i}`, field: 'access_token' }, `token-${i}`);
    const before = readFileSync(join(dir, 'master.key'), 'utf8').trim();
    const oldId = before.split(':')[0];

    const rotate = runWarrant(['keys', 'rotate', '--settle-ms', '1200'], env);
    assert.equal(await rotate.exit(), 0, rotate.stderr());
    assert.match(rotate.stdout(), /re-wrapped: 51\n/); // and the audit chain key
    assert.match(rotate.stdout(), new RegExp(`retired: ${oldId}`));

    const after = readFileSync(join(dir, 'master.key'), 'utf8').trim().split('\n');
    assert.equal(after.length, 1, 'only the new key is left in the file');
    assert.notEqual(after[0]!.split(':')[0], oldId);
    // The running server never restarted: it meets the new key id and re-reads the file.
    for (const i of [0, 25, 49]) assert.equal(await running.store.vault.get({ scope: 'connection', ref: `con_${i}`, field: 'access_token' }), `token-${i}`);
    // And it seals new secrets under the new key.
    await new Promise((r) => setTimeout(r, 1100));
    await running.store.vault.put({ scope: 'connection', ref: 'con_new', field: 'access_token' }, 'fresh');
    const counts = await running.store.secrets.countByKek();
    assert.deepEqual([...counts.keys()], [after[0]!.split(':')[0]]);
  } finally {
    await running.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('warrant keys generate prints a usable id:key', async () => {
  const p = runWarrant(['keys', 'generate'], {});
  assert.equal(await p.exit(), 0);
  assert.match(p.stdout().trim(), /^k[a-z0-9]+:[A-Za-z0-9+/]{43}=$/);
});
