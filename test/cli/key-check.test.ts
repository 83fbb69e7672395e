import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { keyId, parseKeyRing } from '../../src/crypto/index.ts';
import { createStore, KeyCheckError, type Store } from '../../src/store/index.ts';
import { runWarrant } from '../helpers/process.ts';
import { createSchema, dropSchema, storeKinds, testDatabaseUrl } from '../helpers/stores.ts';
import { withSchema } from '../helpers/lifecycle.ts';

const key = () => randomBytes(32).toString('base64');
const ADMIN = { WARRANT_ADMIN_TOKEN: 'key-check-admin-token-0123456789' };

/** A data location of the given kind, as environment variables for `warrant` and options for createStore. */
async function location(kind: 'sqlite' | 'postgres') {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-keycheck-'));
  const schema = `t_${randomBytes(6).toString('hex')}`;
  if (kind === 'postgres') await createSchema(schema);
  const env: Record<string, string> = { WARRANT_DATA_DIR: dir, ...(kind === 'postgres' ? { DATABASE_URL: withSchema(testDatabaseUrl!, schema) } : {}) };
  return {
    env,
    open: (spec: string) =>
      createStore({
        ...(kind === 'postgres' ? { databaseUrl: testDatabaseUrl!, pgSchema: schema } : { dataDir: dir }),
        ring: { current: () => parseKeyRing(spec) },
        poolSize: 2,
      }),
    async cleanup() {
      if (kind === 'postgres') await dropSchema(schema);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const noKeyMaterial = (text: string, ...keys: string[]) => {
  for (const k of keys) {
    assert.ok(!text.includes(k), 'no key material in the output');
    assert.ok(!text.includes(Buffer.from(k, 'base64').toString('hex')), 'no key material (hex) in the output');
  }
};

for (const kind of storeKinds) {
  describe(`key check at start (${kind.name})`, { skip: kind.skip }, () => {
    const cleanups: (() => Promise<void>)[] = [];
    after(async () => {
      for (const c of cleanups) await c();
    });

    test('a restart with another WARRANT_MASTER_KEY stops with exit 78, naming the missing key id, no key material', async () => {
      // Reproduces issue 7 (4): a different key started, served traffic, then answered 500 on the first re-connect link.
      const loc = await location(kind.name);
      cleanups.push(loc.cleanup);
      const keyA = key();
      const keyB = key();
      const idA = keyId(Buffer.from(keyA, 'base64'));
      const first = runWarrant(['serve'], { ...loc.env, ...ADMIN, WARRANT_PORT: '0', WARRANT_MASTER_KEY: keyA });
      await first.waitFor(/"address":"(http:\/\/[^"]+)"/, 60_000);
      assert.equal(await first.kill(), 0);

      const second = runWarrant(['serve'], { ...loc.env, ...ADMIN, WARRANT_PORT: '0', WARRANT_MASTER_KEY: keyB });
      assert.equal(await second.exit(), 78, second.stderr());
      assert.match(second.stderr(), new RegExp(`key check failed: .*${idA}`));
      assert.doesNotMatch(second.stdout(), /warrant listening/, 'never listened');
      noKeyMaterial(second.stdout() + second.stderr(), keyA, keyB);

      // The right ring still starts (and the failed start registered nothing under key B).
      const third = runWarrant(['serve'], { ...loc.env, ...ADMIN, WARRANT_PORT: '0', WARRANT_MASTER_KEY: keyA });
      await third.waitFor(/warrant listening/, 60_000);
      assert.equal(await third.kill(), 0);
      const store = await loc.open(keyA);
      try {
        assert.deepEqual((await store.keys.list()).map((k) => k.id), [idA]);
      } finally {
        await store.close();
      }
    });

    test('a store from before the key check: sealed on the first start if its secrets open, refused if none does', async () => {
      const loc = await location(kind.name);
      cleanups.push(loc.cleanup);
      const keyA = `ka:${key()}`;
      let store: Store = await loc.open(keyA);
      await store.vault.put({ scope: 'connection', ref: 'con_1', field: 'access_token' }, 'tok-1');
      await store.db.deleteFrom('settings').where('name', '=', 'key_canary').execute(); // as an older Warrant left it
      await store.close();

      await assert.rejects(loc.open(`kb:${key()}`), (err: unknown) => {
        assert.ok(err instanceof KeyCheckError);
        assert.equal(err.exitCode, 78);
        assert.deepEqual(err.missingKeyIds, ['ka']);
        assert.match(err.message, /sealed with key-encryption key ka\b.*holds kb/);
        return true;
      });
      store = await loc.open(keyA);
      try {
        assert.equal(await store.canary.sealedWith(), 'ka', 'the first start with the right ring seals the canary');
        await store.db.deleteFrom('secrets').execute();
      } finally {
        await store.close();
      }
      // The canary now stands even where no secret would tell (no secret left, another ring).
      await assert.rejects(loc.open(`kb:${key()}`), KeyCheckError);
    });

    test('warrant keys rotate: refuses a ring that cannot open the store (78); after a rotation the new key alone starts', async () => {
      const loc = await location(kind.name);
      cleanups.push(loc.cleanup);
      const oldSpec = `old:${key()}`;
      const newSpec = `new:${key()}`;
      const store = await loc.open(oldSpec);
      for (let i = 0; i < 5; i++) await store.vault.put({ scope: 'connection', ref: `con_${i}`, field: 'access_token' }, `tok-${i}`);
      await store.close();

      const wrong = runWarrant(['keys', 'rotate'], { ...loc.env, WARRANT_MASTER_KEY: newSpec });
      assert.equal(await wrong.exit(), 78, wrong.stderr());
      assert.match(wrong.stderr(), /key-encryption key old\b/);
      noKeyMaterial(wrong.stdout() + wrong.stderr(), oldSpec.slice(4), newSpec.slice(4));

      const rotate = runWarrant(['keys', 'rotate'], { ...loc.env, WARRANT_MASTER_KEY: `${newSpec},${oldSpec}` });
      assert.equal(await rotate.exit(), 0, rotate.stderr());
      assert.match(rotate.stdout(), /re-wrapped: 5\n/);
      assert.match(rotate.stdout(), /retired: old\n/);

      const after = await loc.open(newSpec);
      try {
        assert.equal(await after.canary.sealedWith(), 'new', 'the canary was re-sealed under the new key');
        assert.equal(await after.vault.get({ scope: 'connection', ref: 'con_3', field: 'access_token' }), 'tok-3');
      } finally {
        await after.close();
      }
    });
  });
}

test('warrant keys rotate in embedded mode (key file): the canary follows the new key, the old key leaves the file, a restart works', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-keycheck-file-'));
  try {
    const first = runWarrant(['serve'], { WARRANT_DATA_DIR: dir, ...ADMIN, WARRANT_PORT: '0' });
    await first.waitFor(/warrant listening/, 60_000);
    assert.equal(await first.kill(), 0);
    const oldId = readFileSync(join(dir, 'master.key'), 'utf8').split(':')[0]!;
    const rotate = runWarrant(['keys', 'rotate', '--settle-ms', '0'], { WARRANT_DATA_DIR: dir });
    assert.equal(await rotate.exit(), 0, rotate.stderr());
    assert.match(rotate.stdout(), new RegExp(`retired: ${oldId}`));
    const lines = readFileSync(join(dir, 'master.key'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 1);
    const again = runWarrant(['serve'], { WARRANT_DATA_DIR: dir, ...ADMIN, WARRANT_PORT: '0' });
    await again.waitFor(/warrant listening/, 60_000);
    assert.equal(await again.kill(), 0, again.stderr());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
