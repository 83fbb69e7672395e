import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { skipWithoutPostgres } from '../helpers/stores.ts';

// A connection id from the URL may decode to what PostgreSQL text cannot hold (NUL). Its audit
// entry must still be written: one unstorable entry retried forever would stop every batch behind
// it, and with them the proxy (fail-closed), for every agent.
for (const store of ['sqlite', 'postgres'] as const) {
  describe(`an agent that sends a NUL in the connection id (${store})`, { skip: store === 'postgres' && skipWithoutPostgres }, () => {
    let env: LifecycleEnv;
    let base: string;
    let conn: string;
    let key: string;

    before(async () => {
      env = await startLifecycle({ store });
      conn = await env.connect();
      const res = await env.warrant.app.inject({
        method: 'POST',
        url: '/v1/agents',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        payload: { name: 'prober', owner: 'alice@example.com', grants: [{ connection: conn, scopes: ['items:read'] }] },
      });
      key = res.json().api_key;
      base = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
    });
    after(() => env.cleanup());

    test('is refused, audited with U+FFFD in place of the NUL, and the audit (and the proxy) keep going', async () => {
      const bad = await fetch(`${base}/v1/proxy/%00/items`, { headers: { authorization: `Bearer ${key}` } });
      assert.equal(bad.status, 403);
      const entry = await eventually(async () => (await env.warrant.audit.query({ type: 'proxy.call', limit: 50 })).find((e) => e.subject === 'connection:\uFFFD'), 5_000);
      assert.equal(entry.data.code, 'policy_denied');

      const ok = await fetch(`${base}/v1/proxy/${conn}/items`, { headers: { authorization: `Bearer ${key}` } });
      assert.equal(ok.status, 200);
      await eventually(async () => (await env.warrant.audit.query({ type: 'proxy.call', limit: 50 })).find((e) => e.subject === `connection:${conn}` && e.data.status === 200), 5_000);
      const verify = await env.warrant.app.inject({ method: 'GET', url: '/v1/audit/verify', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      assert.equal(verify.json().ok, true, verify.body);
    });
  });
}
