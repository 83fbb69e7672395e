import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startLifecycle, sleep, eventually } from '../helpers/lifecycle.ts';
import { skipWithoutPostgres, testDatabaseUrl } from '../helpers/stores.ts';

async function terminate(applicationName: string): Promise<number> {
  const client = new pg.Client({ connectionString: testDatabaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query('select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name = $1', [applicationName]);
    return rows.length;
  } finally {
    await client.end();
  }
}

// Regression: `pg_terminate_backend` on Warrant's sessions crashed the process ("Unhandled
// 'error' event" on a pg Client): pg-pool stops listening to a client's errors while it is checked
// out, as a lock connection is for a whole refresh.
test('every PostgreSQL session of Warrant terminated during refresh traffic: the process lives on and calls succeed again', { skip: skipWithoutPostgres, timeout: 90_000 }, async () => {
  const app = `warrant-test-${randomBytes(4).toString('hex')}`;
  const env = await startLifecycle({ store: 'postgres', scheduler: true, pgApplicationName: app, sandbox: { accessTokenTtl: 2, rotateRefreshTokens: true }, env: { WARRANT_SCHEDULER_INTERVAL_MS: '100' } });
  try {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await env.connect(`owner${i}@example.com`, ['items:read']));
    env.sandbox.setFaults({ tokenEndpoint: { delayMs: 200 } }); // refreshes hold their lock connection a while
    let stop = false;
    const traffic = ids.map(async (id) => {
      while (!stop) {
        await env.warrant.tokens.getFreshToken(id, { minTtlSeconds: 1.5 }).catch(() => undefined);
        await sleep(30);
      }
    });
    for (let i = 0; i < 4; i++) {
      await sleep(600);
      assert.ok((await terminate(app)) > 0, 'Warrant had sessions to terminate');
    }
    stop = true;
    await Promise.all(traffic);
    env.sandbox.setFaults({});
    for (const id of ids) {
      const t = await eventually(() => env.warrant.tokens.getFreshToken(id).catch(() => undefined), 15_000, 200);
      const res = await fetch(`${env.sandbox.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${t.accessToken}` } });
      assert.equal(res.status, 200);
    }
  } finally {
    env.sandbox.setFaults({});
    await env.cleanup();
  }
});
