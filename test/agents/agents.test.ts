import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { storeKinds } from '../helpers/stores.ts';
import { hashSecret } from '../../src/crypto/index.ts';
import { isWarrantError } from '../../src/errors/index.ts';
import { createAgentService, grantFor, type AgentService } from '../../src/agents/index.ts';

const KEY_PATTERN = /^wrt_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const HOUR = 3_600_000;

async function rejectsUnauthenticated(p: Promise<unknown>, detail?: RegExp): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(isWarrantError(err, 'agent_unauthenticated'), `expected agent_unauthenticated, got ${String(err)}`);
    assert.equal(err.status, 401);
    if (detail) assert.match(err.detail ?? '', detail);
    return err.detail ?? '';
  }
  assert.fail('expected agent_unauthenticated');
}

for (const kind of storeKinds) describe(`agents: identities with their own key and narrow grants (${kind.name})`, { skip: kind.skip }, () => {
  let env: LifecycleEnv;
  let alice: string; // connection of alice@example.com: items:read items:write offline_access
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 60 }, store: kind.name });
    alice = await env.connect('alice@example.com', ['items:read', 'items:write']);
  });
  after(async () => env?.cleanup());

  const inject = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) =>
    env.warrant.app.inject({ method, url, headers: admin, ...(payload === undefined ? {} : { payload: payload as object }) });

  async function createAgent(body: Record<string, unknown> = {}) {
    const res = await inject('POST', '/v1/agents', {
      name: 'nightly-batch',
      owner: 'alice@example.com',
      grants: [{ connection: alice, scopes: ['items:read'] }],
      ...body,
    });
    assert.equal(res.statusCode, 201, res.body);
    return res.json() as { id: string; api_key: string; key_id: string; status: string; expires_at: string | null; grants: unknown[] };
  }

  const db = () => env.warrant.store.db;
  const setExpiry = (id: string, at: number) => db().updateTable('agents').set({ expires_at: at }).where('id', '=', id).execute();

  test('create shows the key once: wrt_<key id>_<256-bit secret>, with the agent and its grants', async () => {
    const res = await inject('POST', '/v1/agents', {
      name: 'reporter',
      owner: 'alice@example.com',
      expires_at: new Date(Date.now() + 24 * HOUR).toISOString(),
      grants: [{ connection: alice, scopes: ['items:read', 'items:write'], token_export: true }],
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers['cache-control'], 'no-store');
    const agent = res.json();
    assert.match(agent.id, /^agt_/);
    const [, keyId, secret] = KEY_PATTERN.exec(agent.api_key)!;
    assert.equal(Buffer.from(secret!, 'base64url').length, 32);
    assert.equal(agent.key_id, keyId);
    assert.equal(agent.status, 'active');
    assert.equal(agent.owner, 'alice@example.com');
    assert.equal(agent.last_used_at, null);
    assert.equal(agent.revoked_at, null);
    assert.ok(Date.parse(agent.expires_at) > Date.now() + 23 * HOUR);
    assert.deepEqual(agent.grants, [{ connection: alice, scopes: ['items:read', 'items:write'], token_export: true }]);

    const other = await createAgent();
    assert.notEqual(other.api_key, agent.api_key);
    assert.notEqual(other.key_id, agent.key_id);
  });

  test('list and get never show the key nor its hash; the stored row holds a hash of the secret, not the key', async () => {
    const agent = await createAgent({ name: 'secret-keeper' });
    const [, , secret] = KEY_PATTERN.exec(agent.api_key)!;
    const row = await db().selectFrom('agents').selectAll().where('id', '=', agent.id).executeTakeFirstOrThrow();
    assert.equal(row.key_hash, hashSecret(secret!));
    const rowText = JSON.stringify(row);
    assert.ok(!rowText.includes(secret!), 'the secret is stored in the clear');
    assert.ok(!rowText.includes(agent.api_key));

    const one = await inject('GET', `/v1/agents/${agent.id}`);
    const list = await inject('GET', '/v1/agents');
    assert.equal(one.statusCode, 200);
    assert.equal(list.statusCode, 200);
    assert.ok(list.json().agents.some((a: { id: string }) => a.id === agent.id));
    for (const body of [one.body, list.body]) {
      assert.ok(!body.includes(secret!));
      assert.ok(!body.includes(row.key_hash));
      assert.ok(!/api_key|key_hash/.test(body));
    }
    assert.deepEqual(one.json().grants, agent.grants);
  });

  test('authenticate returns the agent and its grants; grantFor finds a grant by connection', async () => {
    const agent = await createAgent({ name: 'worker', grants: [{ connection: alice, scopes: ['items:read', 'items:read'] }] });
    const who = await env.warrant.agents.authenticate(agent.api_key);
    assert.deepEqual(
      { ...who, grants: who.grants.map((g) => ({ ...g, scopes: [...g.scopes] })) },
      { id: agent.id, name: 'worker', owner: 'alice@example.com', grants: [{ connection_id: alice, scopes: ['items:read'], token_export: false }] },
    );
    assert.deepEqual(grantFor(who, alice)?.scopes, ['items:read']);
    assert.equal(grantFor(who, 'con_other'), undefined);
    assert.ok(Object.isFrozen(who) && Object.isFrozen(who.grants[0]), 'the cached identity must not be mutable by callers');
  });

  test('a missing, malformed, unknown or wrong key is agent_unauthenticated, and the answer does not tell which key ids exist', async () => {
    const agent = await createAgent();
    const [, keyId, secret] = KEY_PATTERN.exec(agent.api_key)!;
    const otherSecret = Buffer.alloc(32, 7).toString('base64url');
    await rejectsUnauthenticated(env.warrant.agents.authenticate(undefined), /Bearer/);
    await rejectsUnauthenticated(env.warrant.agents.authenticate(''));
    await rejectsUnauthenticated(env.warrant.agents.authenticate('wrt_short'), /malformed/);
    await rejectsUnauthenticated(env.warrant.agents.authenticate(`${agent.api_key}x`), /malformed/);
    await rejectsUnauthenticated(env.warrant.agents.authenticate(ADMIN_TOKEN), /malformed/);
    const wrong = await rejectsUnauthenticated(env.warrant.agents.authenticate(`wrt_${keyId}_${otherSecret}`));
    const unknown = await rejectsUnauthenticated(env.warrant.agents.authenticate(`wrt_ZZZZZZZZZZZZ_${secret}`));
    assert.equal(wrong, unknown);
    assert.ok(!wrong.includes(secret!) && !wrong.includes(keyId!));
  });

  test('a revoked agent is agent_unauthenticated at once; revoking again answers 200 with the first revocation', async () => {
    const agent = await createAgent({ name: 'to-revoke' });
    await env.warrant.agents.authenticate(agent.api_key); // cached now: revocation must still bite at once
    const del = await inject('DELETE', `/v1/agents/${agent.id}`);
    assert.equal(del.statusCode, 200, del.body);
    assert.equal(del.json().status, 'revoked');
    assert.ok(del.json().revoked_at);
    assert.ok(!del.body.includes(agent.api_key));
    await rejectsUnauthenticated(env.warrant.agents.authenticate(agent.api_key), /revoked/);

    const again = await inject('DELETE', `/v1/agents/${agent.id}`);
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().revoked_at, del.json().revoked_at);
    const revoked = await env.warrant.audit.query({ type: 'agent.revoked', subject: `agent:${agent.id}` });
    assert.equal(revoked.length, 1);

    const missing = await inject('DELETE', '/v1/agents/agt_nope');
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().code, 'not_found');
  });

  test('an expired agent is agent_unauthenticated and shows as expired', async () => {
    const agent = await createAgent({ name: 'short-lived', expires_at: new Date(Date.now() + HOUR).toISOString() });
    await setExpiry(agent.id, Date.now() - 1000);
    await rejectsUnauthenticated(env.warrant.agents.authenticate(agent.api_key), /expired/);
    const view = (await inject('GET', `/v1/agents/${agent.id}`)).json();
    assert.equal(view.status, 'expired');
    const expired = (await inject('GET', '/v1/agents?status=expired')).json().agents;
    assert.ok(expired.some((a: { id: string }) => a.id === agent.id));
  });

  test('input errors are invalid_request naming the field at fault', async () => {
    const bob = await env.connect('alice@example.com', ['items:read']); // alice's too: holds items:read only
    const revokedConn = await env.connect('bob@example.com', ['items:read']);
    await db().updateTable('connections').set({ status: 'revoked' }).where('id', '=', revokedConn).execute();
    const cases: [Record<string, unknown>, string, RegExp?][] = [
      [{ grants: [{ connection: 'con_missing', scopes: ['items:read'] }] }, 'grants[0].connection', /con_missing/],
      [{ grants: [{ connection: alice, scopes: ['items:read'] }, { connection: bob, scopes: ['items:read', 'items:write', 'items:admin'] }] }, 'grants[1].scopes', /items:write, items:admin/],
      [{ grants: [{ connection: alice, scopes: ['items:read'] }, { connection: alice, scopes: ['items:write'] }] }, 'grants[1].connection', /twice/],
      [{ grants: [{ connection: revokedConn, scopes: ['items:read'] }] }, 'grants[0].connection', /revoked/],
      [{ grants: [{ connection: alice, scopes: [] }] }, 'body.grants[0].scopes'],
      [{ grants: [] }, 'body.grants'],
      [{ expires_at: new Date(Date.now() - 60_000).toISOString() }, 'expires_at', /future/],
      [{ expires_at: 'tomorrow' }, 'body.expires_at'],
      [{ name: '' }, 'body.name'],
      [{ name: 'x'.repeat(101) }, 'body.name'],
      [{ owner: undefined }, 'body.owner'],
      [{ api_key: 'wrt_mine' }, 'body.api_key'],
    ];
    for (const [body, field, detail] of cases) {
      const res = await inject('POST', '/v1/agents', { name: 'bad', owner: 'alice@example.com', grants: [{ connection: alice, scopes: ['items:read'] }], ...body });
      assert.equal(res.statusCode, 400, `${JSON.stringify(body)} → ${res.body}`);
      assert.equal(res.json().code, 'invalid_request');
      assert.equal(res.json().field, field, res.body);
      if (detail) assert.match(res.json().detail, detail);
    }
    const count = await db().selectFrom('agents').select((eb) => eb.fn.countAll<number>().as('n')).where('name', '=', 'bad').executeTakeFirstOrThrow();
    assert.equal(Number(count.n), 0, 'a refused agent must leave nothing behind');
  });

  test('the owner is recorded; an offboarded owner gets no new agent', async () => {
    const theirs = await env.connect('newcomer@example.com', ['items:read']);
    await createAgent({ owner: 'newcomer@example.com', grants: [{ connection: theirs, scopes: ['items:read'] }] });
    const owner = await env.warrant.store.owners.get('newcomer@example.com');
    assert.equal(owner?.status, 'active');
    await db().updateTable('owners').set({ status: 'offboarded', offboarded_at: Date.now() }).where('id', '=', 'newcomer@example.com').execute();
    const res = await inject('POST', '/v1/agents', { name: 'late', owner: 'newcomer@example.com', grants: [{ connection: theirs, scopes: ['items:read'] }] });
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().code, 'conflict');
  });

  test('last use is recorded without waiting for the write', async () => {
    const agent = await createAgent({ name: 'used' });
    const before = Date.now();
    await env.warrant.agents.authenticate(agent.api_key);
    await env.warrant.agents.settle();
    const view = (await inject('GET', `/v1/agents/${agent.id}`)).json();
    assert.ok(Date.parse(view.last_used_at) >= before - 5, view.last_used_at);
  });

  describe('with a clock of its own (another instance on the same store)', () => {
    let t: number;
    let other: AgentService;
    before(() => {
      t = Date.now();
      other = createAgentService({
        store: env.warrant.store,
        audit: env.warrant.audit,
        bus: env.warrant.bus,
        clock: { now: () => t },
        logger: env.logs.logger,
        options: { cacheTtlMs: 5_000, touchIntervalMs: 60_000 },
      });
    });
    after(async () => other?.settle());

    const lastUsed = async (id: string) => (await db().selectFrom('agents').select('last_used_at').where('id', '=', id).executeTakeFirstOrThrow()).last_used_at;

    test('last_used_at is written at most once per interval per agent', async () => {
      const agent = await createAgent({ name: 'busy' });
      await other.authenticate(agent.api_key);
      await other.settle();
      assert.equal(await lastUsed(agent.id), t);
      const first = t;
      t += 30_000;
      for (let i = 0; i < 5; i++) await other.authenticate(agent.api_key);
      await other.settle();
      assert.equal(await lastUsed(agent.id), first, 'written again inside the interval');
      t += 31_000;
      await other.authenticate(agent.api_key);
      await other.settle();
      assert.equal(await lastUsed(agent.id), t);
    });

    test('a revocation made elsewhere takes effect within the cache TTL', async () => {
      const agent = await createAgent({ name: 'revoked-elsewhere' });
      await other.authenticate(agent.api_key);
      await env.warrant.agents.revoke(agent.id);
      t += 1_000;
      assert.equal((await other.authenticate(agent.api_key)).id, agent.id, 'served from the cache inside the TTL');
      t += 5_000;
      await rejectsUnauthenticated(other.authenticate(agent.api_key), /revoked/);
    });

    test('expiry is checked on every call, not cached', async () => {
      const agent = await createAgent({ name: 'expiring', expires_at: new Date(t + 2_000).toISOString() });
      await other.authenticate(agent.api_key);
      t += 2_000;
      await rejectsUnauthenticated(other.authenticate(agent.api_key), /expired/);
    });
  });

  test('?orphaned=true lists live agents whose owner left, whose connections are all unusable, or that expired, with the reasons', async () => {
    const carol = await env.connect('carol@example.com', ['items:read']);
    const dave = await env.connect('carol@example.com', ['items:read']);
    const erin = await env.connect('carol@example.com', ['items:read']);
    const frank = await env.connect('frank@example.com', ['items:read']);

    const healthy = await createAgent({ name: 'healthy', owner: 'carol@example.com', grants: [{ connection: carol, scopes: ['items:read'] }] });
    const ownerGone = await createAgent({ name: 'owner-gone', owner: 'frank@example.com', grants: [{ connection: frank, scopes: ['items:read'] }] });
    const reauth = await createAgent({ name: 'reauth', owner: 'carol@example.com', grants: [{ connection: dave, scopes: ['items:read'] }] });
    const halfReauth = await createAgent({
      name: 'half-reauth',
      owner: 'carol@example.com',
      grants: [
        { connection: dave, scopes: ['items:read'] },
        { connection: carol, scopes: ['items:read'] },
      ],
    });
    const deleted = await createAgent({ name: 'connection-deleted', owner: 'carol@example.com', grants: [{ connection: erin, scopes: ['items:read'] }] });
    const expired = await createAgent({ name: 'expired', owner: 'carol@example.com', expires_at: new Date(Date.now() + HOUR).toISOString(), grants: [{ connection: carol, scopes: ['items:read'] }] });
    const revokedToo = await createAgent({ name: 'revoked', owner: 'frank@example.com', grants: [{ connection: frank, scopes: ['items:read'] }] });

    await db().updateTable('owners').set({ status: 'offboarded', offboarded_at: Date.now() }).where('id', '=', 'frank@example.com').execute();
    await db().updateTable('connections').set({ status: 'reauth_required' }).where('id', '=', dave).execute();
    const revokeConn = await inject('DELETE', `/v1/connections/${erin}`);
    assert.equal(revokeConn.statusCode, 200, revokeConn.body);
    await setExpiry(expired.id, Date.now() - 1000);
    await inject('DELETE', `/v1/agents/${revokedToo.id}`);

    const res = await inject('GET', '/v1/agents?orphaned=true');
    assert.equal(res.statusCode, 200, res.body);
    const reasons = new Map<string, string[]>(res.json().agents.map((a: { id: string; orphan_reasons: string[] }) => [a.id, a.orphan_reasons]));
    assert.deepEqual(reasons.get(ownerGone.id), ['owner_offboarded']);
    assert.deepEqual(reasons.get(reauth.id), ['no_usable_connection']);
    assert.deepEqual(reasons.get(deleted.id), ['no_usable_connection']);
    assert.deepEqual(reasons.get(expired.id), ['expired']);
    for (const a of [healthy, halfReauth, revokedToo]) assert.ok(!reasons.has(a.id), `${a.id} is not an orphan`);
    assert.ok(!res.body.includes('api_key'));

    const carols = (await inject('GET', '/v1/agents?orphaned=true&owner=carol@example.com')).json().agents.map((a: { id: string }) => a.id).sort();
    assert.deepEqual(carols, [reauth.id, deleted.id, expired.id].sort());
    const all = (await inject('GET', '/v1/agents?owner=carol@example.com')).json().agents;
    assert.ok(all.every((a: { orphan_reasons?: unknown }) => a.orphan_reasons === undefined));
  });

  test('agent.created and agent.revoked are audited, without the key or its hash, and the chain verifies', async () => {
    const agent = await createAgent({ name: 'audited' });
    await inject('DELETE', `/v1/agents/${agent.id}`);
    const [, , secret] = KEY_PATTERN.exec(agent.api_key)!;
    const entries = await env.warrant.audit.query({ subject: `agent:${agent.id}` });
    assert.deepEqual(
      entries.map((e) => [e.type, e.actor]),
      [
        ['agent.created', 'admin'],
        ['agent.revoked', 'admin'],
      ],
    );
    assert.deepEqual(entries[0]!.data.grants, [{ connection: alice, scopes: ['items:read'], token_export: false }]);
    const text = JSON.stringify(entries);
    assert.ok(!text.includes(secret!) && !text.includes(hashSecret(secret!)) && !text.includes(agent.api_key));
    assert.ok(!env.logs.text().includes(secret!), 'the secret reached the logs');
    assert.equal((await env.warrant.audit.verify()).ok, true);
  });

  test('the agents admin API needs the admin token', async () => {
    for (const [method, url] of [
      ['GET', '/v1/agents'],
      ['POST', '/v1/agents'],
      ['GET', '/v1/agents/agt_x'],
      ['DELETE', '/v1/agents/agt_x'],
    ] as const) {
      const res = await env.warrant.app.inject({ method, url, headers: { authorization: 'Bearer wrong' } });
      assert.equal(res.statusCode, 401);
      assert.equal(res.json().code, 'admin_unauthenticated');
    }
  });
});
