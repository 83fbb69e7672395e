import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadOrCreateKeyFile } from '../../src/crypto/index.ts';
import { createStore } from '../../src/store/index.ts';
import { FileModeError } from '../../src/util/file-modes.ts';
import { runWarrant } from '../helpers/process.ts';
import { testKeyRing } from '../helpers/stores.ts';

// Reproduces security review finding 19: only a newly created data dir got 0700; warrant.db and its
// WAL took the umask (0644: readable by every local user), and an existing data dir or key file
// open to other users was used as it was.

const skip = process.platform === 'win32' ? 'POSIX modes' : false;
const modeOf = (path: string) => statSync(path).mode & 0o777;
const ADMIN = { WARRANT_ADMIN_TOKEN: 'file-modes-admin-token-0123456789' };

function scratch(): { root: string; cleanup(): void } {
  const root = mkdtempSync(join(tmpdir(), 'warrant-modes-'));
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

test('a new data dir is 0700 and the key file, database, WAL and shared-memory files 0600, whatever the umask', { skip }, async () => {
  const { root, cleanup } = scratch();
  const umask = process.umask(0o022);
  try {
    const dir = join(root, 'data');
    const { created, path } = loadOrCreateKeyFile(dir);
    assert.ok(created);
    assert.equal(modeOf(dir), 0o700);
    assert.equal(modeOf(path), 0o600);
    const ring = testKeyRing();
    const store = await createStore({ dataDir: dir, ring: { current: () => ring } });
    try {
      await store.vault.put({ scope: 'connection', ref: 'con_1', field: 'access_token' }, 'tok');
      const files = readdirSync(dir).sort();
      assert.deepEqual(files, ['master.key', 'warrant.db', 'warrant.db-shm', 'warrant.db-wal']);
      for (const f of files) assert.equal(modeOf(join(dir, f)), 0o600, f);
    } finally {
      await store.close();
    }
  } finally {
    process.umask(umask);
    cleanup();
  }
});

test('an existing database left 0644 by an older version is narrowed to 0600 when opened', { skip }, async () => {
  const { root, cleanup } = scratch();
  try {
    const dir = join(root, 'data');
    mkdirSync(dir, { mode: 0o700 });
    const ring = testKeyRing();
    const first = await createStore({ dataDir: dir, ring: { current: () => ring } });
    await first.vault.put({ scope: 'connection', ref: 'con_1', field: 'access_token' }, 'tok');
    await first.close();
    chmodSync(join(dir, 'warrant.db'), 0o644);
    const again = await createStore({ dataDir: dir, ring: { current: () => ring } });
    try {
      assert.equal(modeOf(join(dir, 'warrant.db')), 0o600);
      assert.equal(await again.vault.get({ scope: 'connection', ref: 'con_1', field: 'access_token' }), 'tok');
    } finally {
      await again.close();
    }
  } finally {
    cleanup();
  }
});

test('an existing data dir open to other users: the store refuses it, naming the path and the chmod', { skip }, async () => {
  const { root, cleanup } = scratch();
  try {
    const dir = join(root, 'shared dir');
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o755);
    const ring = testKeyRing();
    await assert.rejects(
      createStore({ dataDir: dir, ring: { current: () => ring } }),
      (e: Error) => e instanceof FileModeError && e.exitCode === 78 && e.message.includes(`chmod 700 '${dir}'`) && /mode 755/.test(e.message),
    );
    assert.deepEqual(readdirSync(dir), [], 'nothing was created in it');
  } finally {
    cleanup();
  }
});

test('warrant serve exits 78 on a data dir or key file that other users may read, and says how to fix it', { skip }, async () => {
  const { root, cleanup } = scratch();
  try {
    const dir = join(root, 'data');
    mkdirSync(dir, { mode: 0o700 });
    // The key file, group-readable (copied in with a careless umask, say).
    writeFileSync(join(dir, 'master.key'), `k1:${randomBytes(32).toString('base64')}\n`, { mode: 0o640 });
    chmodSync(join(dir, 'master.key'), 0o640);
    const keyFile = runWarrant(['serve'], { WARRANT_DATA_DIR: dir, ...ADMIN, WARRANT_PORT: '0' });
    assert.equal(await keyFile.exit(), 78, keyFile.stderr());
    assert.match(keyFile.stderr(), new RegExp(`${join(dir, 'master.key')} has mode 640.*chmod 600 ${join(dir, 'master.key')}`));
    assert.doesNotMatch(keyFile.stdout(), /warrant listening/);

    chmodSync(join(dir, 'master.key'), 0o600);
    chmodSync(dir, 0o750);
    const dataDir = runWarrant(['serve'], { WARRANT_DATA_DIR: dir, ...ADMIN, WARRANT_PORT: '0' });
    assert.equal(await dataDir.exit(), 78, dataDir.stderr());
    assert.match(dataDir.stderr(), new RegExp(`data directory ${dir} has mode 750.*chmod 700 ${dir}`));

    chmodSync(dir, 0o700);
    const fixed = runWarrant(['serve'], { WARRANT_DATA_DIR: dir, ...ADMIN, WARRANT_PORT: '0' });
    await fixed.waitFor(/warrant listening/, 60_000);
    await fixed.kill();
    assert.equal(modeOf(join(dir, 'warrant.db')), 0o600);
  } finally {
    cleanup();
  }
});
