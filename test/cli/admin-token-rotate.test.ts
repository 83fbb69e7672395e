import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant } from '../../src/warrant.ts';
import { hashSecret, parseKeyRing } from '../../src/crypto/index.ts';
import { createStore } from '../../src/store/index.ts';
import { runWarrant } from '../helpers/process.ts';
import { captureLogger } from '../helpers/app.ts';
import { createSchema, dropSchema, storeKinds, testDatabaseUrl } from '../helpers/stores.ts';
import { withSchema } from '../helpers/lifecycle.ts';

/** One server start on `env`: what the admin API answers each token, and what it printed. */
async function startOnce(env: Record<string, string>, tokens: string[]) {
  const notices: string[] = [];
  const logs = captureLogger();
  const warrant = await createWarrant(loadConfig({ ...env, WARRANT_PORT: '0' }), { logger: logs.logger, notice: (m) => notices.push(m), scheduler: false, webhooks: false });
  try {
    await warrant.listen();
    const status: number[] = [];
    for (const t of tokens) status.push((await warrant.app.inject({ url: '/v1/providers', headers: { authorization: `Bearer ${t}` } })).statusCode);
    return { status, generated: warrant.generatedAdminToken, said: notices.join('\n') + logs.text() };
  } finally {
    await warrant.close();
  }
}

for (const kind of storeKinds) {
  describe(`admin token (${kind.name})`, { skip: kind.skip }, () => {
    const dirs: string[] = [];
    const schemas: string[] = [];
    after(async () => {
      for (const s of schemas) await dropSchema(s);
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });
    async function location(): Promise<Record<string, string>> {
      const dir = mkdtempSync(join(tmpdir(), 'warrant-admin-rotate-'));
      dirs.push(dir);
      const env: Record<string, string> = { WARRANT_DATA_DIR: dir, WARRANT_MASTER_KEY: `k1:${randomBytes(32).toString('base64')}` };
      if (kind.name === 'postgres') {
        const schema = `t_${randomBytes(6).toString('hex')}`;
        schemas.push(schema);
        await createSchema(schema);
        env.DATABASE_URL = withSchema(testDatabaseUrl!, schema);
      }
      return env;
    }

    test('setting WARRANT_ADMIN_TOKEN replaces the stored hash: unsetting it later does not bring the generated token back', async () => {
      // Reproduces security review finding 13: the generated token's hash stayed stored while
      // WARRANT_ADMIN_TOKEN was set, so removing the variable re-enabled a token the operator meant to replace.
      const env = await location();
      const first = await startOnce(env, []);
      const generated = first.generated!;
      assert.match(generated, /^wat_/);

      const chosen = `chosen-${randomBytes(12).toString('hex')}`;
      const configured = await startOnce({ ...env, WARRANT_ADMIN_TOKEN: chosen }, [chosen, generated]);
      assert.deepEqual(configured.status, [200, 401]);

      const unset = await startOnce(env, [generated, chosen]);
      assert.deepEqual(unset.status, [401, 200], 'the old generated token stays dead; the last configured one is the stored one');
      assert.equal(unset.generated, undefined, 'nothing new is generated');
      for (const run of [first, configured, unset]) assert.ok(!run.said.includes(generated) && !run.said.includes(chosen), 'never printed again');
    });

    test('warrant admin-token rotate prints a new token once on stdout and stores only its hash; `reset` still works', async () => {
      const env = await location();
      await startOnce(env, []);
      const rotate = runWarrant(['admin-token', 'rotate'], env);
      assert.equal(await rotate.exit(), 0, rotate.stderr());
      const token = rotate.stdout().trim();
      assert.match(token, /^wat_[A-Za-z0-9_-]{43}$/);
      assert.ok(!rotate.stderr().includes(token), 'shown once');
      const after1 = await startOnce(env, [token]);
      assert.deepEqual(after1.status, [200]);
      assert.ok(!after1.said.includes(token), 'a later start never prints it');

      const reset = runWarrant(['admin-token', 'reset'], env);
      assert.equal(await reset.exit(), 0, reset.stderr());
      const next = reset.stdout().trim();
      assert.notEqual(next, token);
      assert.deepEqual((await startOnce(env, [next, token])).status, [200, 401]);
      const store = await createStore({ databaseUrl: env.DATABASE_URL, dataDir: env.WARRANT_DATA_DIR, ring: { current: () => parseKeyRing(env.WARRANT_MASTER_KEY!) } });
      try {
        assert.equal(await store.settings.get('admin_token_hash'), hashSecret(next));
      } finally {
        await store.close();
      }
    });
  });
}
