import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { parseKeyRing, type KeyRing } from '../../src/crypto/index.ts';
import { createKeyHeartbeat, createStore, type Store } from '../../src/store/index.ts';
import { openTestStore, storeKinds, testDatabaseUrl, type TestStore } from '../helpers/stores.ts';

// Reproduces security review finding 14: `vault.rotate()` retired a key from its own process's view
// (no secret wrapped by it) while another instance, still on the old key list, kept sealing new
// secrets with it; once the retired key was dropped, those secrets could never be opened again.

const spec = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;
const secret = (ref: string) => ({ scope: 'connection', ref, field: 'access_token' });

/** A second process on the same store (same SQLite file, or same PostgreSQL schema). */
function openSibling(kind: 'sqlite' | 'postgres', t: TestStore, ring: KeyRing, now: () => number): Promise<Store> {
  const source = { current: () => ring };
  return kind === 'sqlite'
    ? createStore({ dataDir: t.location, ring: source, now })
    : createStore({ databaseUrl: testDatabaseUrl!, pgSchema: t.location, ring: source, now, poolSize: 2 });
}

for (const kind of storeKinds) {
  describe(`key retirement waits for every instance (${kind.name})`, { skip: kind.skip }, () => {
    const oldSpec = spec('old');
    const newSpec = spec('new');
    let clock = 1_000_000_000_000;
    const now = () => clock;

    async function setUp() {
      const t = await openTestStore(kind.name, parseKeyRing(oldSpec), now);
      const rotator = await openSibling(kind.name, t, parseKeyRing(`${newSpec},${oldSpec}`), now);
      await rotator.canary.reseal(); // as `warrant keys rotate` does
      return {
        t,
        rotator,
        async cleanup() {
          await rotator.close();
          await t.cleanup();
        },
      };
    }

    test('a key another instance still seals with is kept and reported with that instance; retired once it stops', async () => {
      const { t, rotator, cleanup } = await setUp();
      const a = createKeyHeartbeat({ keys: t.store.keys, ring: { current: () => parseKeyRing(oldSpec) }, now, instanceId: 'instance-a', intervalMs: 60_000 });
      try {
        await a.start();
        await t.store.vault.put(secret('con_1'), 'one');

        const first = await rotator.vault.rotate();
        assert.equal(first.rewrapped, 1);
        assert.deepEqual(first.retired, [], 'instance-a still seals with old: it must not be retired');
        assert.deepEqual(first.inUse.map((l) => [l.key, l.instance]), [['old', 'instance-a']]);
        assert.equal((await rotator.keys.list()).find((k) => k.id === 'old')?.status, 'active');

        // Instance A goes on sealing with the old key, as a process with the old key list does.
        await t.store.vault.put(secret('con_2'), 'two');
        await a.stop();

        const second = await rotator.vault.rotate();
        assert.equal(second.rewrapped, 1, 'what A sealed meanwhile is re-wrapped before the key goes');
        assert.deepEqual(second.retired, ['old']);
        assert.deepEqual(second.inUse, []);
        const onlyNew = await openSibling(kind.name, t, parseKeyRing(newSpec), now);
        try {
          assert.equal(await onlyNew.vault.get(secret('con_1')), 'one');
          assert.equal(await onlyNew.vault.get(secret('con_2')), 'two');
        } finally {
          await onlyNew.close();
        }
      } finally {
        await a.stop().catch(() => undefined);
        await cleanup();
      }
    });

    test("a crashed instance's lease runs out by itself (three heartbeat intervals)", async () => {
      const { t, rotator, cleanup } = await setUp();
      const a = createKeyHeartbeat({ keys: t.store.keys, ring: { current: () => parseKeyRing(oldSpec) }, now, instanceId: 'crashed', intervalMs: 60_000 });
      try {
        await a.start(3_600_000); // never ticks: the process "died" after its first stamp
        clock += 179_000;
        assert.deepEqual((await rotator.vault.rotate()).inUse.map((l) => l.instance), ['crashed']);
        clock += 2_000;
        const report = await rotator.vault.rotate();
        assert.deepEqual(report.retired, ['old']);
        assert.deepEqual(report.inUse, []);
      } finally {
        await cleanup();
      }
    });

    test('an instance that switches to the new key keeps the old one only for a short grace', async () => {
      const { t, rotator, cleanup } = await setUp();
      let ring = parseKeyRing(oldSpec);
      const a = createKeyHeartbeat({ keys: t.store.keys, ring: { current: () => ring }, now, instanceId: 'switching', switchGraceMs: 5_000 });
      try {
        await a.start(3_600_000);
        clock += 10_000;
        ring = parseKeyRing(`${newSpec},${oldSpec}`); // the key file gained the new key
        await a.tick();
        clock += 4_000;
        assert.deepEqual((await rotator.vault.rotate()).inUse.map((l) => [l.key, l.instance]), [['old', 'switching']]);
        clock += 1_500;
        const report = await rotator.vault.rotate();
        assert.deepEqual(report.retired, ['old']);
        assert.deepEqual(report.inUse, [], 'its lease on the new key is no obstacle');
      } finally {
        await a.stop();
        await cleanup();
      }
    });

    test('rotate({ waitMs }) waits for an instance that is switching to the new key, then retires the old one', async () => {
      const { t, rotator, cleanup } = await setUp();
      let ring = parseKeyRing(oldSpec);
      const a = createKeyHeartbeat({ keys: t.store.keys, ring: { current: () => ring }, now, instanceId: 'slow-to-switch', switchGraceMs: 5_000 });
      try {
        await a.start(3_600_000);
        const switched = new Promise<void>((done) =>
          setTimeout(async () => {
            ring = parseKeyRing(`${newSpec},${oldSpec}`);
            await a.tick();
            clock += 5_001; // past the grace
            done();
          }, 300),
        );
        const report = await rotator.vault.rotate({ waitMs: 30_000, pollMs: 50 });
        await switched;
        assert.deepEqual(report.retired, ['old']);
        assert.deepEqual(report.inUse, []);
      } finally {
        await a.stop();
        await cleanup();
      }
    });
  });
}
