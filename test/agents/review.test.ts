import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { storeKinds } from '../helpers/stores.ts';

// Scope review (issue 11): granted vs used per agent and grant, from the audit of real proxied
// calls through the sandbox; and narrowing in place with PATCH /v1/agents/{id}: the same key keeps
// working for the kept scopes and is refused the dropped ones; widening is refused.

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

interface GrantReview {
  connection: string;
  granted: string[];
  used: string[];
  unused: string[];
  suggested: string[];
  action: string;
  uses: Record<string, number>;
  denied_calls: number;
  token_exports: number;
  note?: string;
}
interface AgentReview {
  id: string;
  action: string;
  grants: GrantReview[];
  suggested_patch?: { grants: { connection: string; scopes: string[] }[] };
}

for (const kind of storeKinds) describe(`scope review and narrowing in place (${kind.name})`, { skip: kind.skip }, () => {
  let env: LifecycleEnv;
  let base: string;
  let conn: string;
  let other: string;
  const keys: Record<string, { id: string; api_key: string }> = {};

  const inject = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    env.warrant.app.inject({ method, url, headers: admin, ...(payload ? { payload } : {}) });
  const call = async (key: string, method: string, path: string) => {
    const res = await fetch(`${base}/v1/proxy/${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
      ...(method === 'POST' ? { body: '{"name":"x"}' } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  const review = async (query = '') => {
    const res = await inject('GET', `/v1/review/scopes${query}`);
    assert.equal(res.statusCode, 200, res.body);
    return res.json() as { since: string; until: string; agents: AgentReview[]; next_after?: string };
  };
  const grantOf = (r: { agents: AgentReview[] }, agent: string, connection = conn) => r.agents.find((a) => a.id === agent)?.grants.find((g) => g.connection === connection);

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 600 }, store: kind.name });
    base = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
    conn = await env.connect('alice@example.com', ['items:read', 'items:write']);
    other = await env.connect('alice@example.com', ['items:read']);
    const create = async (name: string, grants: object[]) => {
      const res = await inject('POST', '/v1/agents', { name, owner: 'alice@example.com', grants });
      assert.equal(res.statusCode, 201, res.body);
      keys[name] = res.json();
    };
    // reader-writer uses only items:read; both uses both; idle uses nothing; two holds two grants, one unused.
    await create('reader-writer', [{ connection: conn, scopes: ['items:read', 'items:write'] }]);
    await create('both', [{ connection: conn, scopes: ['items:read', 'items:write'] }]);
    await create('idle', [{ connection: conn, scopes: ['items:read'] }]);
    await create('two', [
      { connection: conn, scopes: ['items:read'] },
      { connection: other, scopes: ['items:read'] },
    ]);
    await create('exporter', [{ connection: conn, scopes: ['items:read', 'items:write'], token_export: true }]);

    for (let i = 0; i < 3; i++) assert.equal((await call(keys['reader-writer']!.api_key, 'GET', `${conn}/items`)).status, 200);
    assert.equal((await call(keys.both!.api_key, 'GET', `${conn}/items`)).status, 200);
    assert.equal((await call(keys.both!.api_key, 'POST', `${conn}/items`)).status < 400, true);
    assert.equal((await call(keys.two!.api_key, 'GET', `${conn}/items`)).status, 200);
    // Refused by the policy: counted as denied, never as a use.
    assert.equal((await call(keys.idle!.api_key, 'POST', `${conn}/items`)).status, 403);
    const exported = await fetch(`${base}/v1/connections/${conn}/token`, { headers: { authorization: `Bearer ${keys.exporter!.api_key}` } });
    assert.equal(exported.status, 200);
    await exported.arrayBuffer();
    // The proxy's audit entries and the export's are written apart, in batches: wait until the review sees both.
    await eventually(async () => {
      const r = await review();
      return (grantOf(r, keys.two!.id)?.used.length ?? 0) > 0 && (grantOf(r, keys.exporter!.id)?.token_exports ?? 0) > 0;
    }, 10_000);
  });
  after(async () => env?.cleanup());

  test('per agent and grant: granted, used from the audit, unused, and the suggested narrower grant', async () => {
    const r = await review();
    assert.ok(Date.parse(r.until) - Date.parse(r.since) >= 30 * 86_400_000 - 1000, 'the default window is 30 days');

    const rw = grantOf(r, keys['reader-writer']!.id)!;
    assert.deepEqual(rw.granted, ['items:read', 'items:write']);
    assert.deepEqual(rw.used, ['items:read']);
    assert.deepEqual(rw.unused, ['items:write']);
    assert.deepEqual(rw.suggested, ['items:read']);
    assert.equal(rw.action, 'narrow');
    assert.deepEqual(rw.uses, { 'items:read': 3 });
    const rwAgent = r.agents.find((a) => a.id === keys['reader-writer']!.id)!;
    assert.equal(rwAgent.action, 'narrow');
    assert.deepEqual(rwAgent.suggested_patch, { grants: [{ connection: conn, scopes: ['items:read'] }] });

    const both = grantOf(r, keys.both!.id)!;
    assert.deepEqual(both.used, ['items:read', 'items:write']);
    assert.deepEqual(both.unused, []);
    assert.equal(both.action, 'keep');

    const idle = grantOf(r, keys.idle!.id)!;
    assert.deepEqual(idle.used, []);
    assert.deepEqual(idle.suggested, [], 'nothing used: remove the grant');
    assert.equal(idle.action, 'remove');
    assert.equal(idle.denied_calls, 1);
    assert.equal(r.agents.find((a) => a.id === keys.idle!.id)!.action, 'revoke');

    const twoAgent = r.agents.find((a) => a.id === keys.two!.id)!;
    assert.equal(grantOf(r, keys.two!.id, other)!.action, 'remove');
    assert.deepEqual(twoAgent.suggested_patch, { grants: [{ connection: conn, scopes: ['items:read'] }] }, 'the unused grant is left out of the patch');

    const exp = grantOf(r, keys.exporter!.id)!;
    assert.equal(exp.token_exports, 1);
    assert.equal(exp.action, 'keep', 'an exported token is used where Warrant cannot see: no narrowing suggested');
    assert.deepEqual(exp.suggested, exp.granted);
    assert.match(exp.note!, /not seen/);
  });

  test('the window: calls before `since` do not count; since is validated', async () => {
    const later = new Date(Date.now() - 1).toISOString();
    await new Promise((r) => setTimeout(r, 5));
    const r = await review(`?since=${encodeURIComponent(later)}`);
    assert.deepEqual(grantOf(r, keys['reader-writer']!.id)!.used, []);
    assert.deepEqual(grantOf(await review('?since=P1D'), keys['reader-writer']!.id)!.used, ['items:read']);
    assert.deepEqual(grantOf(await review('?since=12h'), keys['reader-writer']!.id)!.used, ['items:read']);
    for (const bad of ['yesterday', '2999-01-01T00:00:00Z', '0d']) {
      const res = await inject('GET', `/v1/review/scopes?since=${encodeURIComponent(bad)}`);
      assert.equal(res.statusCode, 400, bad);
      assert.equal(res.json().code, 'invalid_request');
      assert.equal(res.json().field, 'since');
    }
  });

  test('pages are bounded: limit and next_after walk every agent once', async () => {
    const seen: string[] = [];
    for (let after: string | undefined, n = 0; n < 10; n++) {
      const page = await review(`?limit=2${after ? `&after=${after}` : ''}`);
      assert.ok(page.agents.length <= 2);
      seen.push(...page.agents.map((a) => a.id));
      if (!page.next_after) break;
      after = page.next_after;
    }
    assert.deepEqual([...seen].sort(), Object.values(keys).map((k) => k.id).sort());
  });

  test('PATCH narrows in place: same key, kept scope works, dropped scope refused, audited once', async () => {
    const agent = keys.both!;
    const res = await inject('PATCH', `/v1/agents/${agent.id}`, { grants: [{ connection: conn, scopes: ['items:read'] }] });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json().grants, [{ connection: conn, scopes: ['items:read'], token_export: false }]);
    assert.equal(res.json().key_id, agent.api_key.slice('wrt_'.length, 'wrt_'.length + 12), 'the key is kept');
    assert.equal((await call(agent.api_key, 'GET', `${conn}/items`)).status, 200);
    const refused = await call(agent.api_key, 'POST', `${conn}/items`);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.code, 'policy_denied');
    const again = await inject('PATCH', `/v1/agents/${agent.id}`, { grants: [{ connection: conn, scopes: ['items:read'] }] });
    assert.equal(again.statusCode, 200, 'the same narrowing again is a no-op');
    const entries = await env.warrant.audit.query({ type: 'agent.narrowed', subject: `agent:${agent.id}` });
    assert.equal(entries.length, 1);
    assert.deepEqual(entries[0]!.data.narrowed, [{ connection: conn, scopes: ['items:read'], removed_scopes: ['items:write'], token_export: false }]);
  });

  test("the review's suggested_patch applies as is; removing a grant keeps the others", async () => {
    const agent = keys.two!;
    const patch = (await review()).agents.find((a) => a.id === agent.id)!.suggested_patch!;
    const res = await inject('PATCH', `/v1/agents/${agent.id}`, patch);
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json().grants.map((g: { connection: string }) => g.connection), [conn]);
    assert.equal((await call(agent.api_key, 'GET', `${conn}/items`)).status, 200);
    const gone = await call(agent.api_key, 'GET', `${other}/items`);
    assert.equal(gone.status, 403);
    assert.equal(gone.body.code, 'policy_denied');
    const [entry] = await env.warrant.audit.query({ type: 'agent.narrowed', subject: `agent:${agent.id}` });
    assert.deepEqual(entry!.data.grants_removed, [{ connection: other, scopes: ['items:read'] }]);
  });

  test('widening is refused with invalid_request naming the field, and changes nothing', async () => {
    const agent = keys['reader-writer']!;
    const cases: [object, string, RegExp][] = [
      [{ grants: [{ connection: conn, scopes: ['items:read', 'items:admin'] }] }, 'grants[0].scopes', /would widen.*items:admin/],
      [{ grants: [{ connection: conn, scopes: ['items:read'] }, { connection: other, scopes: ['items:read'] }] }, 'grants[1].connection', /no grant on/],
      [{ grants: [{ connection: conn, scopes: ['items:read'], token_export: true }] }, 'grants[0].token_export', /cannot turn it on/],
      [{ grants: [] }, 'grants', /at least one grant must remain/],
      [{}, 'body', /grants, status/],
    ];
    for (const [body, field, detail] of cases) {
      const res = await inject('PATCH', `/v1/agents/${agent.id}`, body);
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().code, 'invalid_request');
      assert.equal(res.json().field, field);
      assert.match(res.json().detail, detail);
    }
    const bad = await inject('PATCH', `/v1/agents/${agent.id}`, { grants: [{ connection: conn, scopes: ['items:read'] }], name: 'x' });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().field, 'body.name');
    const view = await inject('GET', `/v1/agents/${agent.id}`);
    assert.deepEqual(view.json().grants[0].scopes, ['items:read', 'items:write'], 'nothing changed');
    assert.equal((await inject('PATCH', '/v1/agents/agt_nope', { status: 'active' })).statusCode, 404);
  });

  test('a revoked agent cannot be changed (409)', async () => {
    const agent = keys.idle!;
    assert.equal((await inject('DELETE', `/v1/agents/${agent.id}`)).statusCode, 200);
    const res = await inject('PATCH', `/v1/agents/${agent.id}`, { grants: [{ connection: conn, scopes: ['items:read'] }] });
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().code, 'conflict');
  });
});
