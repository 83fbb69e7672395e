import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, eventually, sleep, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { storeKinds, skipWithoutPostgres } from '../helpers/stores.ts';
import { hashSecret } from '../../src/crypto/index.ts';
import { adminRouteRoles, requiredRole, roleAllows, ADMIN_ROLES, type AdminRole } from '../../src/admin/index.ts';

// Scoped admin keys (issue 11 item 6): a dashboard viewer or a SIEM exporter holds a `read` key and
// cannot mint agents; `operate` revokes but does not mint; `admin` does everything. Revocation is
// seen on every instance within a second; every admin action is audited under the key's id.

const KEY_PATTERN = /^wak_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

test('the role of a route: its table entry, else GET/HEAD → read and anything else → admin', () => {
  assert.equal(requiredRole('GET', '/v1/agents'), 'read');
  assert.equal(requiredRole('HEAD', '/v1/agents'), 'read');
  assert.equal(requiredRole('POST', '/v1/agents'), 'admin');
  assert.equal(requiredRole('PUT', '/v1/something-new'), 'admin');
  assert.equal(requiredRole('PATCH', '/v1/something-new'), 'admin');
  assert.equal(requiredRole('DELETE', '/v1/agents/:id'), 'operate');
  assert.equal(requiredRole('GET', '/v1/admin-keys'), 'admin');
  assert.equal(requiredRole('HEAD', '/v1/admin-keys'), 'admin');
  assert.equal(requiredRole('POST', undefined), 'admin');
  for (const [route, role] of Object.entries(adminRouteRoles)) {
    assert.match(route, /^(GET|POST|PUT|PATCH|DELETE) \/[^\s]*$/, route);
    assert.ok(ADMIN_ROLES.includes(role));
  }
  assert.ok(roleAllows('admin', 'operate') && roleAllows('operate', 'read') && !roleAllows('read', 'operate') && !roleAllows('operate', 'admin'));
});

for (const kind of storeKinds) describe(`admin keys: read / operate / admin (${kind.name})`, { skip: kind.skip }, () => {
  let env: LifecycleEnv;
  let alice: string;
  const keys = {} as Record<AdminRole, { id: string; key: string }>;

  const call = (token: string, method: 'GET' | 'POST' | 'DELETE' | 'PUT' | 'PATCH', url: string, payload?: unknown) =>
    env.warrant.app.inject({ method, url, headers: bearer(token), ...(payload === undefined ? {} : { payload: payload as object }) });

  async function mint(role: AdminRole, extra: Record<string, unknown> = {}, as = ADMIN_TOKEN) {
    const res = await call(as, 'POST', '/v1/admin-keys', { name: `${role} key`, role, ...extra });
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json();
    return { id: body.id as string, key: body.api_key as string, body };
  }

  async function createAgent(token: string) {
    return call(token, 'POST', '/v1/agents', { name: 'nightly', owner: 'alice@example.com', grants: [{ connection: alice, scopes: ['items:read'] }] });
  }

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 60 }, store: kind.name });
    alice = await env.connect('alice@example.com', ['items:read', 'items:write']);
    for (const role of ADMIN_ROLES) keys[role] = await mint(role);
  });
  after(async () => env?.cleanup());

  test('create shows the key once (wak_<key id>_<256-bit secret>); list and get never show it nor its hash', async () => {
    const res = await call(ADMIN_TOKEN, 'POST', '/v1/admin-keys', { name: 'siem exporter', role: 'read' });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers['cache-control'], 'no-store');
    const created = res.json();
    const [, keyId, secret] = KEY_PATTERN.exec(created.api_key)!;
    assert.equal(created.id, `adk_${keyId}`);
    assert.equal(Buffer.from(secret!, 'base64url').length, 32);
    assert.deepEqual(
      { name: created.name, role: created.role, status: created.status, created_by: created.created_by, expires_at: created.expires_at, revoked_at: created.revoked_at },
      { name: 'siem exporter', role: 'read', status: 'active', created_by: 'admin', expires_at: null, revoked_at: null },
    );
    const row = await env.warrant.store.db.selectFrom('admin_keys').selectAll().where('id', '=', created.id).executeTakeFirstOrThrow();
    assert.equal(row.key_hash, hashSecret(secret!), 'the stored hash is of the secret');
    assert.ok(!JSON.stringify(row).includes(created.api_key));

    const list = await call(ADMIN_TOKEN, 'GET', '/v1/admin-keys');
    assert.equal(list.statusCode, 200);
    const listed = list.json().admin_keys.find((k: { id: string }) => k.id === created.id);
    assert.ok(listed);
    const one = await call(ADMIN_TOKEN, 'GET', `/v1/admin-keys/${created.id}`);
    for (const text of [list.body, one.body]) {
      assert.ok(!text.includes(secret!) && !text.includes(row.key_hash) && !text.includes('api_key'), 'no key, no hash');
    }
    assert.equal((await call(created.api_key, 'GET', '/v1/agents')).statusCode, 200, 'the key works at once');
  });

  test('bad input is invalid_request naming the field', async () => {
    const cases: [unknown, string][] = [
      [{ name: 'x', role: 'owner' }, 'body.role'],
      [{ name: '', role: 'read' }, 'body.name'],
      [{ role: 'read' }, 'body.name'],
      [{ name: 'x', role: 'read', expires_at: 'tomorrow' }, 'body.expires_at'],
      [{ name: 'x', role: 'read', secret: 'mine' }, 'body.secret'],
    ];
    for (const [payload, field] of cases) {
      const res = await call(ADMIN_TOKEN, 'POST', '/v1/admin-keys', payload);
      assert.equal(res.statusCode, 400, JSON.stringify(payload));
      assert.equal(res.json().code, 'invalid_request');
      assert.equal(res.json().field, field, JSON.stringify(payload));
    }
    const past = await call(ADMIN_TOKEN, 'POST', '/v1/admin-keys', { name: 'x', role: 'read', expires_at: new Date(Date.now() - 1000).toISOString() });
    assert.equal(past.statusCode, 400);
    assert.equal(past.json().field, 'expires_at');
  });

  test('read: every GET and the audit, nothing else; a refusal is 403 admin_forbidden naming the role needed', async () => {
    const read = keys.read.key;
    for (const url of ['/v1/agents', '/v1/connections', `/v1/connections/${alice}`, '/v1/audit?limit=5', '/v1/audit/verify', '/v1/audit/head', '/v1/providers', '/v1/webhooks']) {
      assert.equal((await call(read, 'GET', url)).statusCode, 200, url);
    }
    const mintAgent = await createAgent(read);
    assert.equal(mintAgent.statusCode, 403);
    const problem = mintAgent.json();
    assert.equal(problem.code, 'admin_forbidden');
    assert.equal(problem.required_role, 'admin');
    assert.equal(problem.role, 'read');
    assert.match(problem.detail, /admin/);
    assert.ok(!mintAgent.body.includes(read), 'the key is not echoed');

    const agent = (await createAgent(ADMIN_TOKEN)).json();
    const revoke = await call(read, 'DELETE', `/v1/agents/${agent.id}`);
    assert.equal(revoke.statusCode, 403);
    assert.equal(revoke.json().required_role, 'operate');
    assert.equal((await call(read, 'POST', `/v1/connections/${alice}/refresh`)).json().required_role, 'operate');
    assert.equal((await call(read, 'GET', '/v1/admin-keys')).statusCode, 403, 'admin keys are for admins, GET included');
    assert.equal((await call(read, 'POST', '/v1/admin-keys', { name: 'escalate', role: 'admin' })).statusCode, 403);
    assert.equal((await call(ADMIN_TOKEN, 'GET', `/v1/agents/${agent.id}`)).json().status, 'active', 'nothing happened');
  });

  test('operate: revokes and refreshes, cannot mint agents, keys, webhooks or import grants', async () => {
    const operate = keys.operate.key;
    assert.equal((await call(operate, 'GET', '/v1/agents')).statusCode, 200);
    const agent = (await createAgent(ADMIN_TOKEN)).json();
    const revoked = await call(operate, 'DELETE', `/v1/agents/${agent.id}`);
    assert.equal(revoked.statusCode, 200, revoked.body);
    assert.equal(revoked.json().status, 'revoked');
    assert.equal((await call(operate, 'POST', `/v1/connections/${alice}/refresh`)).statusCode, 200);
    const mintAgent = await createAgent(operate);
    assert.equal(mintAgent.statusCode, 403);
    assert.equal(mintAgent.json().required_role, 'admin');
    assert.equal(mintAgent.json().role, 'operate');
    assert.equal((await call(operate, 'POST', '/v1/admin-keys', { name: 'x', role: 'read' })).statusCode, 403);
    assert.equal((await call(operate, 'POST', '/v1/webhooks', { url: 'https://example.com/hook', events: ['*'] })).statusCode, 403);
    assert.equal((await call(operate, 'POST', '/v1/connections', { provider: 'sandbox', owner: 'x', access_token: 't', scopes: [] })).statusCode, 403);
  });

  test('admin: everything, admin keys included; a role check runs before the body is read', async () => {
    const admin = keys.admin.key;
    const agent = await createAgent(admin);
    assert.equal(agent.statusCode, 201, agent.body);
    const minted = await mint('read', {}, admin);
    assert.equal(minted.body.created_by, `admin_key:${keys.admin.id}`);
    assert.equal((await call(admin, 'DELETE', `/v1/admin-keys/${minted.id}`)).statusCode, 200);
    // A read key sending a malformed body to an admin route: refused for its role, not for the body.
    const res = await env.warrant.app.inject({ method: 'POST', url: '/v1/agents', headers: { ...bearer(keys.read.key), 'content-type': 'application/json' }, payload: '{"broken' });
    assert.equal(res.statusCode, 403);
  });

  test("every admin action's audit actor is the key's id (never the key); the admin token stays `admin`", async () => {
    const created = (await createAgent(keys.admin.key)).json();
    await call(keys.operate.key, 'DELETE', `/v1/agents/${created.id}`);
    const byToken = (await createAgent(ADMIN_TOKEN)).json();
    const entries = await env.warrant.audit.query({ limit: 1000 });
    const of = (type: string, subject: string) => entries.find((e) => e.type === type && e.subject === subject)!;
    assert.equal(of('agent.created', `agent:${created.id}`).actor, `admin_key:${keys.admin.id}`);
    assert.equal(of('agent.revoked', `agent:${created.id}`).actor, `admin_key:${keys.operate.id}`);
    assert.equal(of('agent.created', `agent:${byToken.id}`).actor, 'admin');
    const minted = of('admin_key.created', `admin_key:${keys.read.id}`);
    assert.equal(minted.actor, 'admin');
    assert.deepEqual({ role: minted.data.role, name: minted.data.name }, { role: 'read', name: 'read key' });
    // Filterable: what one key did.
    const byKey = await env.warrant.audit.query({ actor: `admin_key:${keys.operate.id}` });
    assert.ok(byKey.length >= 1 && byKey.every((e) => e.actor === `admin_key:${keys.operate.id}`));
    const all = JSON.stringify(entries);
    for (const role of ADMIN_ROLES) assert.ok(!all.includes(keys[role].key) && !all.includes(KEY_PATTERN.exec(keys[role].key)![2]!), 'no key in the audit');
  });

  test('revoked: refused at once with 401 like an unknown key; revoking again answers the same, audited once', async () => {
    const k = await mint('operate');
    assert.equal((await call(k.key, 'GET', '/v1/agents')).statusCode, 200);
    const first = await call(ADMIN_TOKEN, 'DELETE', `/v1/admin-keys/${k.id}`);
    assert.equal(first.statusCode, 200);
    assert.equal(first.json().status, 'revoked');
    const refused = await call(k.key, 'GET', '/v1/agents');
    assert.equal(refused.statusCode, 401);
    assert.equal(refused.json().code, 'admin_unauthenticated');
    const again = await call(ADMIN_TOKEN, 'DELETE', `/v1/admin-keys/${k.id}`);
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().revoked_at, first.json().revoked_at);
    const revocations = await env.warrant.audit.query({ type: 'admin_key.revoked', subject: `admin_key:${k.id}` });
    assert.equal(revocations.length, 1);
    assert.equal((await call(ADMIN_TOKEN, 'DELETE', '/v1/admin-keys/adk_0000000000000000')).statusCode, 404);
    // Unknown id, wrong secret: the same 401.
    const [, keyId] = KEY_PATTERN.exec(keys.read.key)!;
    for (const token of [`wak_0123456789abcdef_${'A'.repeat(43)}`, `wak_${keyId}_${'B'.repeat(43)}`]) {
      const res = await env.warrant.app.inject({ url: '/v1/agents', headers: bearer(token), remoteAddress: '192.0.2.50' });
      assert.equal(res.statusCode, 401);
      assert.equal(res.json().code, 'admin_unauthenticated');
    }
  });

  test('expiry: refused from expires_at on, listed as expired', async () => {
    const k = await mint('read', { expires_at: new Date(Date.now() + 1_500).toISOString() });
    assert.equal((await call(k.key, 'GET', '/v1/agents')).statusCode, 200);
    await eventually(async () => (await call(k.key, 'GET', '/v1/agents')).statusCode === 401, 5_000, 100);
    const listed = (await call(ADMIN_TOKEN, 'GET', `/v1/admin-keys/${k.id}`)).json();
    assert.equal(listed.status, 'expired');
    assert.ok(listed.last_used_at, 'last use recorded');
  });
});

describe('admin keys on two instances sharing PostgreSQL', { skip: skipWithoutPostgres }, () => {
  let a: LifecycleEnv;
  let b: LifecycleEnv;
  before(async () => {
    a = await startLifecycle({ sandbox: { accessTokenTtl: 60 }, store: 'postgres' });
    b = await startLifecycle({
      store: 'postgres',
      sharedSandbox: a.sandbox,
      shared: { pgSchema: a.env.WARRANT_TEST_PG_SCHEMA, masterKey: a.env.WARRANT_MASTER_KEY!, providersFile: a.providersFile },
    });
  });
  after(async () => {
    await b?.cleanup();
    await a?.cleanup();
  });

  test('a key revoked on one instance is refused on the other within 1 s', async () => {
    const res = await a.warrant.app.inject({ method: 'POST', url: '/v1/admin-keys', headers: bearer(ADMIN_TOKEN), payload: { name: 'dashboard', role: 'read' } });
    assert.equal(res.statusCode, 201);
    const { id, api_key } = res.json();
    const onB = () => b.warrant.app.inject({ url: '/v1/agents', headers: bearer(api_key) });
    await eventually(async () => (await onB()).statusCode === 200, 2_000, 50); // created elsewhere: usable here within the snapshot's age
    // B has it in its snapshot now; keep using it so the snapshot is warm when the revocation lands.
    assert.equal((await onB()).statusCode, 200);
    const revoked = await a.warrant.app.inject({ method: 'DELETE', url: `/v1/admin-keys/${id}`, headers: bearer(ADMIN_TOKEN) });
    assert.equal(revoked.statusCode, 200);
    const t0 = performance.now();
    assert.equal((await a.warrant.app.inject({ url: '/v1/agents', headers: bearer(api_key) })).statusCode, 401, 'at once where revoked');
    let status = 200;
    while (status !== 401 && performance.now() - t0 < 3_000) {
      status = (await onB()).statusCode;
      if (status !== 401) await sleep(20);
    }
    const elapsed = performance.now() - t0;
    assert.equal(status, 401);
    assert.ok(elapsed < 1_000, `refused on the other instance after ${Math.round(elapsed)} ms`);
    // The actor on B's audit is the key id too.
    const k2 = (await a.warrant.app.inject({ method: 'POST', url: '/v1/admin-keys', headers: bearer(ADMIN_TOKEN), payload: { name: 'ops', role: 'admin' } })).json();
    await eventually(async () => (await b.warrant.app.inject({ method: 'POST', url: '/v1/admin-keys', headers: bearer(k2.api_key), payload: { name: 'from b', role: 'read' } })).statusCode === 201, 2_000, 50);
    const made = await b.warrant.audit.query({ type: 'admin_key.created', actor: `admin_key:${k2.id}` });
    assert.equal(made.length, 1);
  });
});
