import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseKeyRing, type KeyRing } from '../../src/crypto/index.ts';
import { createStore, type Store } from '../../src/store/index.ts';
import { CHAIN_KEY_SECRET, createAuditLog, loadChainKey, type ChainKey } from '../../src/events/index.ts';
import { openTestStore, storeKinds, testDatabaseUrl, type TestStore } from '../helpers/stores.ts';

// The chain key of the keyed audit chain (security review finding 12): made once per store even
// when instances start at once (a second key would split the chain: each instance's entries would
// break the other's), never overwritten, and re-wrapped like any other secret by a key rotation.

const spec = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;

/** Another process on the same store (same SQLite file, or same PostgreSQL schema). */
function openSibling(kind: 'sqlite' | 'postgres', t: TestStore, ring: KeyRing): Promise<Store> {
  const source = { current: () => ring };
  return kind === 'sqlite'
    ? createStore({ dataDir: t.location, ring: source })
    : createStore({ databaseUrl: testDatabaseUrl!, pgSchema: t.location, ring: source, poolSize: 2 });
}

const child = fileURLToPath(new URL('../helpers/chain-key-child.ts', import.meta.url));

/** A Warrant process on the store (test/helpers/chain-key-child.ts); `line` resolves with the first stdout line matching. */
function startInstance(env: Record<string, string>) {
  const proc = spawn(process.execPath, ['--import', 'tsx', child], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const line = (re: RegExp, timeoutMs = 60_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      const poll = () => {
        const m = out.split('\n').map((l) => l.match(re)).find(Boolean);
        if (m) return resolve(m);
        if (proc.exitCode !== null || Date.now() > deadline) return reject(new Error(`instance: no line ${re}; stderr=${err}`));
        setTimeout(poll, 20);
      };
      poll();
    });
  return { child: proc, line };
}

const load = (s: Store) => loadChainKey({ vault: s.vault, db: s.db, dialect: s.dialect });
const raw = (c: ChainKey) => ({ key: c.key.export().toString('hex'), fromSeq: c.fromSeq, afterHash: c.afterHash });

for (const kind of storeKinds) {
  describe(`audit chain key (${kind.name})`, { skip: kind.skip }, () => {
    const cleanups: (() => Promise<void>)[] = [];
    after(async () => {
      for (const c of cleanups.reverse()) await c();
    });

    test('instances starting at once on one store make one key, with one boundary', async () => {
      const ringSpec = spec('k1');
      const t = await openTestStore(kind.name, parseKeyRing(ringSpec));
      cleanups.push(() => t.cleanup());
      const old = createAuditLog({ db: t.store.db, dialect: t.store.dialect, now: Date.now });
      await old.append(Array.from({ length: 5 }, (_, i) => ({ type: 'old', actor: 'system', data: { i } })));

      const env = {
        CHAIN_RING: ringSpec,
        ...(kind.name === 'postgres' ? { CHAIN_DATABASE_URL: testDatabaseUrl!, CHAIN_PG_SCHEMA: t.location } : { CHAIN_DATA_DIR: t.location }),
      };
      const instances = Array.from({ length: 4 }, () => startInstance(env));
      cleanups.push(async () => instances.forEach((i) => i.child.kill()));
      await Promise.all(instances.map((i) => i.line(/^ready$/)));
      for (const i of instances) i.child.stdin!.write('go\n');
      const loaded = await Promise.all(instances.map(async (i) => JSON.parse((await i.line(/^\{.*\}$/))[0]) as { created: boolean; fingerprint: string; fromSeq: number; afterHash: string }));

      assert.equal(loaded.filter((l) => l.created).length, 1, 'exactly one instance stored a key');
      const [first, ...rest] = loaded.map(({ created: _, ...k }) => k);
      for (const other of rest) assert.deepEqual(other, first);
      assert.equal(first!.fromSeq, 6);
      const rows = await t.store.db.selectFrom('secrets').select('field').where('scope', '=', 'audit').execute();
      assert.deepEqual(rows, [{ field: 'key' }]);
      const again = await load(t.store);
      assert.equal(again.created, false);
      assert.equal(createHash('sha256').update(again.chain.key.export()).digest('hex'), first!.fingerprint);
    });

    test('putIfAbsent: one of many concurrent writers wins, everyone reads its value, nothing overwrites it', async () => {
      const t = await openTestStore(kind.name);
      cleanups.push(() => t.cleanup());
      const key = { scope: 'test', ref: 'race', field: 'value' };
      const won = await Promise.all(Array.from({ length: 8 }, (_, i) => t.store.vault.putIfAbsent(key, `value-${i}`)));
      assert.equal(won.filter(Boolean).length, 1);
      assert.equal(await t.store.vault.get(key), `value-${won.indexOf(true)}`);
      assert.equal(await t.store.vault.putIfAbsent(key, 'late'), false);
      assert.equal(await t.store.vault.get(key), `value-${won.indexOf(true)}`);
    });

    test('warrant keys rotate re-wraps the chain key: the chain verifies and grows under the new key ring alone', async () => {
      const oldSpec = spec('old');
      const newSpec = spec('new');
      const t = await openTestStore(kind.name, parseKeyRing(oldSpec));
      cleanups.push(() => t.cleanup());
      const before = await load(t.store);
      const audit = createAuditLog({ db: t.store.db, dialect: t.store.dialect, now: Date.now, chain: before.chain });
      await audit.append(Array.from({ length: 20 }, (_, i) => ({ type: 'before.rotation', actor: 'system', data: { i } })));
      await audit.close();

      const rotator = await openSibling(kind.name, t, parseKeyRing(`${newSpec},${oldSpec}`));
      try {
        await rotator.canary.reseal(); // as `warrant keys rotate` does
        const report = await rotator.vault.rotate();
        assert.equal(report.rewrapped, 1, 'the chain key is re-wrapped like any other secret');
        assert.deepEqual(report.retired, ['old']);
      } finally {
        await rotator.close();
      }
      assert.equal((await t.store.secrets.get(CHAIN_KEY_SECRET))?.kek_id, 'new');

      const onlyNew = await openSibling(kind.name, t, parseKeyRing(newSpec));
      try {
        const after = await load(onlyNew);
        assert.equal(after.created, false);
        assert.deepEqual(raw(after.chain), raw(before.chain));
        const log = createAuditLog({ db: onlyNew.db, dialect: onlyNew.dialect, sqliteFile: onlyNew.sqliteFile, now: Date.now, chain: after.chain });
        await log.append(Array.from({ length: 20 }, (_, i) => ({ type: 'after.rotation', actor: 'system', data: { i } })));
        await log.close();
        assert.deepEqual(await log.verify(7), { ok: true, entries: 40, keyed_from: 1 });
      } finally {
        await onlyNew.close();
      }
    });
  });
}
