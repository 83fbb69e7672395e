import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, sleep, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe('token export and lease keep the audit honest', () => {
  let env: LifecycleEnv;
  before(async () => {
    // Warrant's own rate and concurrency limits would answer most of this flood 429 before it
    // reached an audit slot: off here, so 20,000 failures still go through the audit queue.
    const noLimits = { WARRANT_AGENT_RATE_PER_SECOND: '0', WARRANT_AGENT_CONCURRENCY: '0', WARRANT_CONNECTION_RATE_PER_SECOND: '0', WARRANT_CONNECTION_CONCURRENCY: '0' };
    env = await startLifecycle({ sandbox: { accessTokenTtl: 2, rotateRefreshTokens: true }, env: noLimits });
  });
  after(async () => env?.cleanup());

  async function agent(name: string, connection: string) {
    const res = await env.warrant.app.inject({
      method: 'POST',
      url: '/v1/agents',
      headers: admin,
      payload: { name, owner: 'alice@example.com', grants: [{ connection, scopes: ['items:read'], token_export: true }] },
    });
    assert.equal(res.statusCode, 201, res.body);
    return res.json().api_key as string;
  }

  // Regression: a failed lease or export reserved an audit slot and never gave it back; 10,000
  // failures by one agent filled the queue and every other agent's call answered 503 until restart.
  test('20,000 failing leases by one agent: every one audited, and another agent still gets 200', { timeout: 180_000 }, async () => {
    const dead = await env.connect('alice@example.com', ['items:read']); // the agents' owner: no cross-owner grant
    const alive = await env.connect('alice@example.com', ['items:read']);
    const bad = await agent('misbehaving', dead);
    const good = await agent('well-behaved', alive);
    const t = await env.warrant.tokens.getFreshToken(dead);
    await env.sandbox.revokeGrantOf(t.accessToken);
    await sleep(2_100);
    await env.warrant.tokens.getFreshToken(dead).catch(() => undefined);

    const lease = { method: 'POST' as const, url: `/v1/connections/${dead}/lease`, headers: { authorization: `Bearer ${bad}` }, payload: { min_ttl: 60 } };
    for (let i = 0; i < 20_000; i += 100) {
      const answers = await Promise.all(Array.from({ length: 100 }, () => env.warrant.app.inject(lease)));
      for (const a of answers) assert.equal(a.statusCode, 424, a.body);
    }
    const exported = await env.warrant.app.inject({ url: `/v1/connections/${dead}/token`, headers: { authorization: `Bearer ${bad}` } });
    assert.equal(exported.statusCode, 424);

    const base = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
    const res = await fetch(`${base}/v1/proxy/${alive}/items`, { headers: { authorization: `Bearer ${good}` } });
    assert.equal(res.status, 200, await res.text());

    await env.warrant.auditQueue.flush();
    const entries = await eventually(async () => {
      const all = [];
      let after = 0;
      for (;;) {
        const page = await env.warrant.audit.query({ type: 'token.leased', afterSeq: after, limit: 1000 });
        if (!page.length) break;
        all.push(...page);
        after = page.at(-1)!.seq;
      }
      return all.length === 20_000 ? all : undefined;
    }, 30_000, 200);
    assert.ok(entries.every((e) => e.data.code === 'reauth_required' && e.data.status === 424));
    const failedExport = await env.warrant.audit.query({ type: 'token.exported', subject: `connection:${dead}` });
    assert.equal(failedExport.length, 1);
    assert.equal(failedExport[0]!.data.code, 'reauth_required');
  });
});
