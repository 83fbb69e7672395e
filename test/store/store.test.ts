import { describe, test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseKeyRing } from '../../src/crypto/index.ts';
import { openTestStore, storeKinds, testDatabaseUrl, type TestStore } from '../helpers/stores.ts';

for (const kind of storeKinds) {
  describe(`store on ${kind.name}`, { skip: kind.skip }, () => {
    let t: TestStore;
    before(async () => {
      t = await openTestStore(kind.name);
    });
    after(async () => t?.cleanup());

    const connection = (id: string, owner = 'alice@example.com') => ({
      id,
      provider: 'acme',
      environment: 'production',
      owner,
      status: 'active' as const,
      scopes: JSON.stringify(['items:read']),
      requested_scopes: JSON.stringify(['items:read']),
      params: '{}',
      expires_at: 1_900_000_000_000,
      refresh_due_at: 1_899_999_700_000,
      last_refreshed_at: null,
      last_error: null,
      next_attempt_at: null,
      created_at: Date.now(),
      updated_at: Date.now(),
    });

    test('migrations are idempotent and connections round-trip with millisecond times intact', async () => {
      await t.store.connections.insert(connection('con_1'));
      const row = await t.store.connections.get('con_1');
      assert.equal(row?.expires_at, 1_900_000_000_000);
      assert.equal(typeof row?.expires_at, 'number');
      assert.equal(row?.version, 0);
      assert.deepEqual(JSON.parse(row!.scopes), ['items:read']);
    });

    test('compare-and-swap on version lets exactly one writer win', async () => {
      const row = (await t.store.connections.get('con_1'))!;
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => t.store.connections.updateIfVersion('con_1', row.version, { last_error: `w${i}` })),
      );
      assert.equal(results.filter(Boolean).length, 1);
      assert.equal((await t.store.connections.get('con_1'))?.version, row.version + 1);
    });

    test('list filters by owner, status and provider', async () => {
      await t.store.connections.insert({ ...connection('con_2', 'bob@example.com'), status: 'reauth_required' });
      assert.deepEqual((await t.store.connections.list({ owner: 'bob@example.com' })).map((c) => c.id), ['con_2']);
      assert.deepEqual((await t.store.connections.list({ status: 'active' })).map((c) => c.id), ['con_1']);
      assert.equal((await t.store.connections.list({ provider: 'acme' })).length, 2);
    });

    test('a transaction rolls back the row and its secret together', async () => {
      await assert.rejects(
        t.store.transaction(async (trx) => {
          await t.store.connections.insert(connection('con_rollback'), trx);
          await t.store.vault.put({ scope: 'connection', ref: 'con_rollback', field: 'access_token' }, 'tok', trx);
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal(await t.store.connections.get('con_rollback'), undefined);
      assert.equal(await t.store.vault.get({ scope: 'connection', ref: 'con_rollback', field: 'access_token' }), undefined);
    });

    test('vault secrets open only for the row and field they were sealed for', async () => {
      const a = { scope: 'connection', ref: 'con_1', field: 'refresh_token' };
      const b = { scope: 'connection', ref: 'con_2', field: 'refresh_token' };
      await t.store.vault.put(a, 'rt-for-alice');
      await t.store.vault.put(b, 'rt-for-bob');
      assert.equal(await t.store.vault.get(a), 'rt-for-alice');
      // An attacker with database access copies alice's sealed token onto bob's row.
      const rowA = (await t.store.secrets.get(a))!;
      await t.store.db
        .updateTable('secrets')
        .set({ kek_id: rowA.kek_id, wrapped_key: rowA.wrapped_key, ciphertext: rowA.ciphertext })
        .where('scope', '=', 'connection')
        .where('ref', '=', 'con_2')
        .where('field', '=', 'refresh_token')
        .execute();
      await assert.rejects(t.store.vault.get(b), /tampered|another record/);
    });

    test('settings: setIfAbsent stores once', async () => {
      assert.equal(await t.store.settings.setIfAbsent('admin_token_hash', 'h1', 1), true);
      assert.equal(await t.store.settings.setIfAbsent('admin_token_hash', 'h2', 2), false);
      assert.equal(await t.store.settings.get('admin_token_hash'), 'h1');
    });
  });

  describe(`key rotation on ${kind.name}`, { skip: kind.skip }, () => {
    test('rotation re-wraps every secret under the new key, keeps them readable, and retires the old key', async () => {
      const oldKey = randomBytes(32).toString('base64');
      const newKey = randomBytes(32).toString('base64');
      const t = await openTestStore(kind.name, parseKeyRing(`old:${oldKey}`));
      try {
        const values = new Map<string, string>();
        for (let i = 0; i < 1200; i++) {
          const k = { scope: 'connection', ref: `con_${i}`, field: i % 2 ? 'access_token' : 'refresh_token' };
          values.set(k.ref, `secret-${i}-${randomBytes(8).toString('hex')}`);
          await t.store.vault.put(k, values.get(k.ref)!);
        }
        // The operator puts the new key first; the running store learns it through reload().
        let ring = parseKeyRing(`old:${oldKey}`);
        const both = parseKeyRing(`new:${newKey},old:${oldKey}`);
        const { createVault } = await import('../../src/store/vault.ts');
        const vault = createVault({
          secrets: t.store.secrets,
          keys: t.store.keys,
          ring: { current: () => ring, reload: () => (ring = both) },
          now: Date.now,
        });
        const report = await vault.rotate({ batchSize: 250 });
        assert.equal(report.activeKey, 'new');
        assert.equal(report.rewrapped, 1200);
        assert.deepEqual(report.retired, ['old']);
        assert.deepEqual([...(await t.store.secrets.countByKek()).keys()], ['new']);
        // Readable with the new key alone.
        const onlyNew = createVault({ secrets: t.store.secrets, keys: t.store.keys, ring: { current: () => parseKeyRing(`new:${newKey}`) }, now: Date.now });
        for (const i of [0, 1, 599, 1199]) {
          const field = i % 2 ? 'access_token' : 'refresh_token';
          assert.equal(await onlyNew.get({ scope: 'connection', ref: `con_${i}`, field }), values.get(`con_${i}`));
        }
        const keys = await t.store.keys.list();
        assert.deepEqual(keys.map((k) => [k.id, k.status]).sort(), [['new', 'active'], ['old', 'retired']]);
      } finally {
        await t.cleanup();
      }
    });
  });

  describe(`no plaintext secret at rest on ${kind.name}`, { skip: kind.skip }, () => {
    test('a scan of the raw database finds none of the stored tokens', async () => {
      const t = await openTestStore(kind.name);
      const secrets = Array.from({ length: 20 }, (_, i) => `tok_${i}_${randomBytes(12).toString('hex')}`);
      try {
        for (const [i, s] of secrets.entries()) {
          await t.store.vault.put({ scope: 'connection', ref: `con_${i}`, field: 'access_token' }, s);
        }
        let raw: Buffer;
        if (kind.name === 'sqlite') {
          await t.store.close(); // checkpoint the WAL into the file, then read every file in the dir
          raw = Buffer.concat(readdirSync(t.location).map((f) => readFileSync(join(t.location, f))));
        } else {
          raw = execFileSync('pg_dump', ['--dbname', testDatabaseUrl!, '--schema', t.location, '--data-only'], { maxBuffer: 64 << 20 });
        }
        assert.ok(raw.length > 1000, 'the dump has content');
        for (const s of secrets) {
          assert.ok(!raw.includes(Buffer.from(s)), 'plaintext token found at rest');
          assert.ok(!raw.includes(Buffer.from(Buffer.from(s).toString('base64'))), 'base64 of a token found at rest');
        }
      } finally {
        await t.cleanup().catch(() => {});
      }
    });
  });
}
