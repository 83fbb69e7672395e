import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant } from '../../src/warrant.ts';
import { captureLogger } from '../helpers/app.ts';
import { runWarrant } from '../helpers/process.ts';
import { createSchema, dropSchema, storeKinds, testDatabaseUrl } from '../helpers/stores.ts';
import { withSchema } from '../helpers/lifecycle.ts';

// Reproduces security review finding 14 end to end: `warrant keys rotate` run with the new key list
// retired the old key while a server still running on the old list sealed every new token with it.

for (const kind of storeKinds) {
  describe(`warrant keys rotate while a server still seals with the old key (${kind.name})`, { skip: kind.skip }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'warrant-keys-in-use-'));
    const schema = `t_${randomBytes(6).toString('hex')}`;
    after(async () => {
      if (kind.name === 'postgres') await dropSchema(schema);
      rmSync(dir, { recursive: true, force: true });
    });

    test('the old key is kept and the instance named; once that server stops, a rotation retires it', async () => {
      if (kind.name === 'postgres') await createSchema(schema);
      const oldSpec = `old:${randomBytes(32).toString('base64')}`;
      const newSpec = `new:${randomBytes(32).toString('base64')}`;
      const env = {
        WARRANT_DATA_DIR: dir,
        WARRANT_ADMIN_TOKEN: 'keys-in-use-admin-token-0123456789',
        ...(kind.name === 'postgres' ? { DATABASE_URL: withSchema(testDatabaseUrl!, schema) } : {}),
      };
      const running = await createWarrant(loadConfig({ ...env, WARRANT_MASTER_KEY: oldSpec }), { logger: captureLogger().logger, notice: () => {}, scheduler: false, webhooks: false });
      let stopped = false;
      try {
        await running.store.vault.put({ scope: 'connection', ref: 'con_1', field: 'access_token' }, 'one');
        const [lease] = await running.store.db.selectFrom('key_usage').selectAll().execute();
        assert.equal(lease?.key_id, 'old');

        const rotate = runWarrant(['keys', 'rotate', '--wait-ms', '0'], { ...env, WARRANT_MASTER_KEY: `${newSpec},${oldSpec}` });
        assert.equal(await rotate.exit(), 0, rotate.stderr());
        assert.match(rotate.stdout(), /re-wrapped: 2\n/); // con_1 and the audit chain key
        assert.match(rotate.stdout(), /retired: \(none\)\n/);
        assert.ok(rotate.stdout().includes(`kept: old, still in use by instance ${lease!.instance_id} (lease until `), rotate.stdout());
        assert.equal((await running.store.keys.list()).find((k) => k.id === 'old')?.status, 'active');

        // The server on the old list goes on sealing with the old key, and can read what it sealed.
        await running.store.vault.put({ scope: 'connection', ref: 'con_2', field: 'access_token' }, 'two');
        assert.equal(await running.store.vault.get({ scope: 'connection', ref: 'con_2', field: 'access_token' }), 'two');
        await running.close();
        stopped = true;

        const again = runWarrant(['keys', 'rotate', '--wait-ms', '0'], { ...env, WARRANT_MASTER_KEY: `${newSpec},${oldSpec}` });
        assert.equal(await again.exit(), 0, again.stderr());
        assert.match(again.stdout(), /re-wrapped: 1\n/);
        assert.match(again.stdout(), /retired: old\n/);
        assert.doesNotMatch(again.stdout(), /kept:/);
      } finally {
        if (!stopped) await running.close();
      }
    });
  });
}
