import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { storeKinds } from '../helpers/stores.ts';
import { grantFor } from '../../src/agents/index.ts';

// Regression (security review, low 17): an agent of one owner could be granted another owner's
// connection (`POST /v1/agents {owner: bob, grants: [{connection: <alice's>}]}` answered 201), so
// whoever could create agents for bob could act with alice's grant. Refused now unless alice's
// connection is shared with bob, an explicit and audited allowance that can be taken back.

for (const kind of storeKinds) describe(`cross-owner grants need the connection owner's share (${kind.name})`, { skip: kind.skip }, () => {
  let env: LifecycleEnv;
  let alices: string;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 600 }, store: kind.name });
    alices = await env.connect('alice@example.com', ['items:read', 'items:write']);
  });
  after(async () => env?.cleanup());

  const inject = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
    env.warrant.app.inject({ method, url, headers: admin, ...(payload ? { payload } : {}) });
  const agentFor = (owner: string, name: string, connection = alices) =>
    inject('POST', '/v1/agents', { name, owner, grants: [{ connection, scopes: ['items:read'] }] });
  const named = async (name: string) =>
    (await env.warrant.store.db.selectFrom('agents').select('id').where('name', '=', name).execute()).length;

  test("an agent of another owner is refused alice's connection: invalid_request naming grants[i].connection", async () => {
    const own = await env.connect('bob@example.com', ['items:read']);
    const res = await inject('POST', '/v1/agents', {
      name: 'bob-overreach',
      owner: 'bob@example.com',
      grants: [
        { connection: own, scopes: ['items:read'] },
        { connection: alices, scopes: ['items:read'] },
      ],
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().code, 'invalid_request');
    assert.equal(res.json().field, 'grants[1].connection');
    assert.match(res.json().detail, /belongs to another owner/);
    assert.match(res.json().detail, new RegExp(`/v1/connections/${alices}/shares`));
    // Refused before the scopes are looked at: nothing told of what alice's connection holds.
    const probe = await inject('POST', '/v1/agents', { name: 'bob-probe', owner: 'bob@example.com', grants: [{ connection: alices, scopes: ['items:admin'] }] });
    assert.equal(probe.json().field, 'grants[0].connection');
    assert.equal(await named('bob-overreach'), 0, 'a refused agent leaves nothing behind');
    assert.equal((await agentFor('alice@example.com', 'alice-own')).statusCode, 201, "the owner's own agents need no share");
  });

  test('sharing lets exactly the named owner in; it is idempotent and audited once', async () => {
    const shared = await inject('POST', `/v1/connections/${alices}/shares`, { owner: 'bob@example.com' });
    assert.equal(shared.statusCode, 201, shared.body);
    assert.deepEqual(Object.keys(shared.json()).sort(), ['connection', 'created_at', 'owner']);
    assert.equal(shared.json().connection, alices);
    assert.equal(shared.json().owner, 'bob@example.com');
    const again = await inject('POST', `/v1/connections/${alices}/shares`, { owner: 'bob@example.com' });
    assert.equal(again.statusCode, 200, again.body);
    assert.deepEqual(again.json(), shared.json());
    const listed = await inject('GET', `/v1/connections/${alices}/shares`);
    assert.deepEqual(listed.json(), { shares: [shared.json()] });
    const audit = await env.warrant.audit.query({ type: 'connection.shared', subject: `connection:${alices}` });
    assert.equal(audit.length, 1);
    assert.deepEqual(audit[0]!.data, { owner: 'alice@example.com', shared_with: 'bob@example.com' });
    assert.equal(audit[0]!.actor, 'admin');

    const bobs = await agentFor('bob@example.com', 'bob-shared');
    assert.equal(bobs.statusCode, 201, bobs.body);
    const who = await env.warrant.agents.authenticate(bobs.json().api_key);
    assert.deepEqual(grantFor(who, alices)?.scopes, ['items:read']);
    const [created] = await env.warrant.audit.query({ type: 'agent.created', subject: `agent:${bobs.json().id}` });
    assert.deepEqual(created!.data.grants, [{ connection: alices, scopes: ['items:read'], token_export: false, shared: true }], 'the audit says the grant rests on a share');

    const carol = await agentFor('carol@example.com', 'carol-not-shared');
    assert.equal(carol.statusCode, 400, carol.body);
    assert.equal(carol.json().field, 'grants[0].connection');
  });

  test('unsharing removes the grants it allowed, at once, and refuses new ones again', async () => {
    const dora = await env.connect('alice@example.com', ['items:read']);
    await inject('POST', `/v1/connections/${dora}/shares`, { owner: 'dan@example.com' });
    const agent = await agentFor('dan@example.com', 'dan-shared', dora);
    assert.equal(agent.statusCode, 201, agent.body);
    const key = agent.json().api_key as string;
    assert.ok(grantFor(await env.warrant.agents.authenticate(key), dora), 'granted (and cached) before the unshare');

    const res = await inject('DELETE', `/v1/connections/${dora}/shares/${encodeURIComponent('dan@example.com')}`);
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), { connection: dora, owner: 'dan@example.com', grants_removed: [agent.json().id] });
    assert.equal(grantFor(await env.warrant.agents.authenticate(key), dora), undefined, 'the cached grant must go at once');
    assert.deepEqual((await inject('GET', `/v1/agents/${agent.json().id}`)).json().grants, []);
    const port = (env.warrant.app.server.address() as { port: number }).port;
    const proxied = await fetch(`http://127.0.0.1:${port}/v1/proxy/${dora}/items`, { headers: { authorization: `Bearer ${key}` } });
    const problem = (await proxied.json()) as { code: string };
    assert.equal(proxied.status, 403, JSON.stringify(problem));
    assert.equal(problem.code, 'policy_denied');

    const [unshared] = await env.warrant.audit.query({ type: 'connection.unshared', subject: `connection:${dora}` });
    assert.deepEqual(unshared!.data, { owner: 'alice@example.com', shared_with: 'dan@example.com', grants_removed: [agent.json().id] });
    assert.equal((await agentFor('dan@example.com', 'dan-again', dora)).statusCode, 400);
    assert.equal((await inject('DELETE', `/v1/connections/${dora}/shares/dan@example.com`)).statusCode, 404);
    assert.equal((await env.warrant.audit.verify()).ok, true);
  });

  test('share input errors; the admin credential is required', async () => {
    const revoked = await env.connect('alice@example.com', ['items:read']);
    await env.warrant.store.db.updateTable('connections').set({ status: 'revoked' }).where('id', '=', revoked).execute();
    const cases: [string, object, number, string?][] = [
      ['con_missing', { owner: 'bob@example.com' }, 404],
      [alices, { owner: 'alice@example.com' }, 400, 'owner'],
      [alices, {}, 400, 'body.owner'],
      [alices, { owner: 'bob@example.com', scopes: ['items:read'] }, 400, 'body.scopes'],
      [revoked, { owner: 'bob@example.com' }, 409],
    ];
    for (const [connection, body, status, field] of cases) {
      const res = await inject('POST', `/v1/connections/${connection}/shares`, body);
      assert.equal(res.statusCode, status, `${connection} ${JSON.stringify(body)} → ${res.body}`);
      if (field) assert.equal(res.json().field, field, res.body);
    }
    assert.equal((await inject('GET', '/v1/connections/con_missing/shares')).statusCode, 404);
    for (const [method, url] of [
      ['POST', `/v1/connections/${alices}/shares`],
      ['GET', `/v1/connections/${alices}/shares`],
      ['DELETE', `/v1/connections/${alices}/shares/bob@example.com`],
    ] as const) {
      const res = await env.warrant.app.inject({ method, url, headers: { authorization: 'Bearer wrong' }, ...(method === 'POST' ? { payload: { owner: 'mallory@example.com' } } : {}) });
      assert.equal(res.statusCode, 401);
      assert.equal(res.json().code, 'admin_unauthenticated');
    }
    assert.equal((await inject('GET', `/v1/connections/${alices}/shares`)).json().shares.length, 1, 'nothing shared by the refused calls');
  });
});
