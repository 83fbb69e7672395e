import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';

// An agent that gives up on a slow upstream must not leave Warrant waiting for it: the upstream
// call is abandoned at once (its socket, limit permit and the shutdown drain freed), audited 499.
describe('an agent that closes its connection before the answer', () => {
  let env: LifecycleEnv;
  let base: string;
  let conn: string;
  let key: string;
  let agentId: string;

  before(async () => {
    env = await startLifecycle();
    conn = await env.connect();
    const res = await env.warrant.app.inject({
      method: 'POST',
      url: '/v1/agents',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      payload: { name: 'impatient', owner: 'alice@example.com', grants: [{ connection: conn, scopes: ['items:read'] }] },
    });
    ({ api_key: key, id: agentId } = res.json());
    base = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
  });
  after(() => env.cleanup());

  test('abandons the upstream call at once and audits it as client_closed (499)', async () => {
    env.sandbox.setFaults({ api: { delayMs: 20_000, count: 1 } });
    const res = fetch(`${base}/v1/proxy/${conn}/items`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(300) });
    await assert.rejects(res, { name: 'TimeoutError' });
    const gaveUpAt = Date.now();
    const entry = await eventually(async () => (await env.warrant.audit.query({ type: 'proxy.call', limit: 10 })).find((e) => e.data.code === 'client_closed'), 5_000);
    assert.ok(Date.now() - gaveUpAt < 5_000, 'audited long before the upstream would have answered');
    assert.equal(entry.data.status, 499);
    assert.equal(entry.actor, `agent:${agentId}`);

    // The next call goes through as usual.
    const ok = await fetch(`${base}/v1/proxy/${conn}/items`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(ok.status, 200);
  });
});
