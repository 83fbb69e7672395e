import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { sandboxDefaults } from '../../src/sandbox/options.ts';
import { startLifecycle, sleep, adminCall, proxiedStatus, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { skipWithoutPostgres, skipWithoutRedis } from '../helpers/stores.ts';

// Offboarding an owner cascades and verifies (issue 11): every agent key stops on the next request
// on every instance sharing the store (within a second: the key cache is 5 s, so only the
// invalidation can make it), every upstream grant is revoked at the IdP and shown dead by
// introspection, and the answer says so per grant. A grant the IdP did not really revoke is
// `verified: false` with why, and one alert.


interface Report {
  owner: string;
  status: string;
  agents: { id: string; revoked: boolean }[];
  connections: { id: string; provider: string; revoked: boolean; verified: boolean; verification: string; detail: string; idp_status: number | null; checked_at: string }[];
}

async function createAgent(env: LifecycleEnv, owner: string, connection: string, name: string): Promise<{ id: string; api_key: string }> {
  const r = await adminCall(env, 'POST', '/v1/agents', { name, owner, grants: [{ connection, scopes: ['items:read'] }] });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return r.json;
}

/** RFC 7662 at the sandbox itself, as the IdP's own client: is this token still active? */
async function activeAtIdp(sandbox: Sandbox, token: string): Promise<boolean> {
  const res = await fetch(`${sandbox.issuer}/token/introspection`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${sandboxDefaults.clientId}:${sandboxDefaults.clientSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ token, token_type_hint: 'refresh_token' }),
  });
  assert.equal(res.status, 200);
  return ((await res.json()) as { active: boolean }).active;
}

async function twoInstances(store: 'sqlite' | 'postgres', redis: boolean, sandbox: Sandbox): Promise<[LifecycleEnv, LifecycleEnv]> {
  const a = await startLifecycle({ sharedSandbox: sandbox, store, redis });
  const b = await startLifecycle({
    sharedSandbox: sandbox,
    store,
    redis,
    shared: { dataDir: a.env.WARRANT_DATA_DIR, pgSchema: a.env.WARRANT_TEST_PG_SCHEMA, masterKey: a.env.WARRANT_MASTER_KEY!, providersFile: a.providersFile },
  });
  return [a, b];
}

const variants = [
  { name: 'PostgreSQL, no Redis (the store carries the invalidation)', store: 'postgres' as const, redis: false, skip: skipWithoutPostgres },
  { name: 'PostgreSQL and Redis (pub/sub carries it)', store: 'postgres' as const, redis: true, skip: skipWithoutPostgres || skipWithoutRedis },
  { name: 'SQLite shared by two instances', store: 'sqlite' as const, redis: false, skip: false as const },
];

for (const v of variants) {
  describe(`offboarding on two instances: ${v.name}`, { skip: v.skip }, () => {
    let sandbox: Sandbox;
    let a: LifecycleEnv;
    let b: LifecycleEnv;
    before(async () => {
      sandbox = await startSandbox({ accessTokenTtl: 600 });
      [a, b] = await twoInstances(v.store, v.redis, sandbox);
    });
    after(async () => {
      await b?.cleanup();
      await a?.cleanup();
      await sandbox?.close();
    });

    test('3 agents and 2 grants: every key 401 on both instances within 1 s, both grants dead at the IdP, verified: true; a second call reports the same', async () => {
      const owner = 'olivia@example.com';
      const c1 = await a.connect(owner);
      const c2 = await a.connect(owner);
      const refreshTokens = await Promise.all([c1, c2].map(async (c) => (await a.warrant.store.vault.getAll('connection', c)).refresh_token!));
      assert.ok(refreshTokens.every(Boolean));
      const agents = [await createAgent(a, owner, c1, 'one'), await createAgent(a, owner, c2, 'two'), await createAgent(a, owner, c1, 'three')];
      const calls = agents.map((ag, i) => ({ key: ag.api_key, connection: i === 1 ? c2 : c1 }));
      // Warm both instances' key caches: a cold cache would prove nothing.
      for (const env of [a, b]) for (const c of calls) assert.equal(await proxiedStatus(env, c.key, c.connection), 200);
      const shown = await adminCall(b, 'GET', `/v1/owners/${encodeURIComponent(owner)}`);
      assert.equal(shown.status, 200);
      assert.deepEqual({ status: shown.json.status, agents: shown.json.agents, connections: shown.json.connections }, { status: 'active', agents: 3, connections: 2 });
      const revocationsBefore = sandbox.stats().revocations;

      const answer = await adminCall(a, 'POST', `/v1/owners/${encodeURIComponent(owner)}/offboard`);
      const answeredAt = Date.now();
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      const report = answer.json as Report;
      assert.equal(report.owner, owner);
      assert.equal(report.status, 'offboarded');
      assert.deepEqual(
        report.agents.map((x) => x.id).sort(),
        agents.map((x) => x.id).sort(),
      );
      assert.ok(report.agents.every((x) => x.revoked === true));
      assert.deepEqual(report.connections.map((c) => c.id).sort(), [c1, c2].sort());
      for (const c of report.connections) {
        assert.deepEqual(
          { provider: c.provider, revoked: c.revoked, verified: c.verified, verification: c.verification, detail: c.detail, idp_status: c.idp_status },
          { provider: 'sandbox', revoked: true, verified: true, verification: 'introspection', detail: 'introspection reports the grant inactive', idp_status: 200 },
        );
      }

      // Every key refused on both instances within a second of the answer.
      const pending = new Set(calls.flatMap((c) => [a, b].map((env) => ({ env, ...c }))));
      while (pending.size && Date.now() - answeredAt < 1_000) {
        for (const p of [...pending]) if ((await proxiedStatus(p.env, p.key, p.connection)) === 401) pending.delete(p);
        if (pending.size) await sleep(50);
      }
      assert.equal(pending.size, 0, `${pending.size} key(s) still accepted 1 s after the offboarding answered`);
      // Both grants dead at the IdP, asked there directly.
      for (const rt of refreshTokens) assert.equal(await activeAtIdp(sandbox, rt), false);

      // Idempotent: the same state, no second revocation at the IdP, no second owner.offboarded.
      const again = await adminCall(b, 'POST', `/v1/owners/${encodeURIComponent(owner)}/offboard`);
      assert.equal(again.status, 200);
      assert.deepEqual(again.json, report);
      assert.equal(sandbox.stats().revocations, revocationsBefore + 2);
      const entries = await a.warrant.audit.query({ subject: `owner:${owner}` });
      assert.deepEqual(entries.map((e) => e.type), ['owner.offboarded']);

      // The proof in the audit, without token material.
      for (const c of [c1, c2]) {
        const [revoked] = (await a.warrant.audit.query({ subject: `connection:${c}` })).filter((e) => e.type === 'connection.revoked');
        assert.ok(revoked, 'connection.revoked audited');
        assert.equal(revoked.data.verification, 'introspection');
        assert.equal(revoked.data.idp_status, 200);
        assert.ok(typeof revoked.data.checked_at === 'string');
        const text = JSON.stringify(revoked);
        for (const rt of refreshTokens) assert.ok(!text.includes(rt));
      }

      // The owner as listed: offboarded, nothing left; no new agent or connection for them.
      const after1 = await adminCall(b, 'GET', `/v1/owners/${encodeURIComponent(owner)}`);
      assert.deepEqual(
        { status: after1.json.status, agents: after1.json.agents, connections: after1.json.connections, report: after1.json.offboarding },
        { status: 'offboarded', agents: 0, connections: 0, report },
      );
      const listed = await adminCall(a, 'GET', '/v1/owners?status=offboarded');
      assert.ok(listed.json.owners.some((o: { id: string }) => o.id === owner));
      const refused = await adminCall(b, 'POST', '/v1/connect-sessions', { provider: 'sandbox', owner, scopes: ['items:read'] });
      assert.equal(refused.status, 409, JSON.stringify(refused.json));
    });
  });
}

describe('offboarding: listing, unknown owners, an IdP that ignores the revocation', () => {
  let env: LifecycleEnv;
  let deaf: Receiver;
  let hooks: Receiver;
  before(async () => {
    // A revocation endpoint that answers 200 and revokes nothing.
    deaf = await startReceiver();
    hooks = await startReceiver();
    const sandbox = await startSandbox({ accessTokenTtl: 600 });
    env = await startLifecycle({
      sharedSandbox: sandbox,
      providers: [{ extends: 'sandbox', id: 'sandbox-deaf', environments: { production: { revocation_url: `${deaf.url}/revoke` } } }],
      env: { WARRANT_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.1/32' },
    });
    const hook = await adminCall(env, 'POST', '/v1/webhooks', { url: `${hooks.url}/hooks`, events: ['connection.revocation_unverified'] });
    assert.equal(hook.status, 201, JSON.stringify(hook.json));
  });
  after(async () => {
    await env?.cleanup();
    await env?.sandbox.close();
    await deaf?.close();
    await hooks?.close();
  });

  test('the IdP ignores the revocation: verified: false with why, and one alert', async () => {
    const owner = 'quentin@example.com';
    const good = await env.connect(owner);
    const ignored = await env.connectTo('sandbox-deaf', owner);
    const rt = (await env.warrant.store.vault.getAll('connection', ignored)).refresh_token!;
    const answer = await adminCall(env, 'POST', `/v1/owners/${encodeURIComponent(owner)}/offboard`);
    assert.equal(answer.status, 200, JSON.stringify(answer.json));
    const byId = new Map((answer.json as Report).connections.map((c) => [c.id, c]));
    assert.equal(byId.get(good)?.verified, true);
    const bad = byId.get(ignored)!;
    assert.deepEqual(
      { revoked: bad.revoked, verified: bad.verified, verification: bad.verification, detail: bad.detail },
      { revoked: true, verified: false, verification: 'introspection', detail: 'introspection still reports the grant active' },
    );
    assert.equal(deaf.at('/revoke').length, 1, 'the revocation was sent');
    assert.equal(await activeAtIdp(env.sandbox, rt), true, 'the grant really is alive');
    const alerts = (await env.warrant.audit.query({ type: 'connection.revocation_unverified' })).filter((e) => e.subject === `connection:${ignored}`);
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0]!.data.detail, 'introspection still reports the grant active');
    const delivered = await (async () => {
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(100)) {
        const got = hooks.at('/hooks').map((r) => JSON.parse(r.body) as { type: string; data: { subject: string } });
        if (got.length) return got;
      }
      return [];
    })();
    assert.deepEqual(delivered.map((d) => [d.type, d.data.subject]), [['connection.revocation_unverified', `connection:${ignored}`]]);
    // Asked again: the same state, and no second alert.
    const again = await adminCall(env, 'POST', `/v1/owners/${encodeURIComponent(owner)}/offboard`);
    assert.deepEqual(again.json, answer.json);
    assert.equal((await env.warrant.audit.query({ type: 'connection.revocation_unverified' })).filter((e) => e.subject === `connection:${ignored}`).length, 1);
  });

  test('unknown owner: 404 not_found; owners are listed a page at a time with their counts', async () => {
    const missing = await adminCall(env, 'POST', '/v1/owners/nobody%40example.com/offboard');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.code, 'not_found');
    assert.equal((await adminCall(env, 'GET', '/v1/owners/nobody%40example.com')).status, 404);
    for (const o of ['page-a@example.com', 'page-b@example.com', 'page-c@example.com']) await env.connect(o);
    const first = await adminCall(env, 'GET', '/v1/owners?limit=2&status=active');
    assert.equal(first.status, 200);
    assert.equal(first.json.owners.length, 2);
    assert.ok(first.json.next_after);
    const second = await adminCall(env, 'GET', `/v1/owners?limit=2&status=active&after=${encodeURIComponent(first.json.next_after)}`);
    const ids = [...first.json.owners, ...second.json.owners].map((o: { id: string }) => o.id);
    assert.equal(new Set(ids).size, ids.length, 'no owner on two pages');
    for (const o of ['page-a@example.com', 'page-b@example.com', 'page-c@example.com']) assert.ok(ids.includes(o), o);
    const pageA = [...first.json.owners, ...second.json.owners].find((o: { id: string }) => o.id === 'page-a@example.com');
    assert.deepEqual({ status: pageA.status, agents: pageA.agents, connections: pageA.connections }, { status: 'active', agents: 0, connections: 1 });
    const bad = await adminCall(env, 'GET', '/v1/owners?limit=0');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.code, 'invalid_request');
  });
});
