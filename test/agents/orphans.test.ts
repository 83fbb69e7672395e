import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { skipWithoutPostgres, storeKinds } from '../helpers/stores.ts';
import type { AuditEntry } from '../../src/events/index.ts';

// Orphans (issue 11): agents whose owner is offboarded or unknown, or that are unused for
// WARRANT_AGENT_IDLE_DAYS, are announced by one `agent.orphaned` event each — however many sweeps
// and instances run — and WARRANT_ORPHAN_POLICY=suspend suspends them: the key is refused with a
// typed problem that says how to undo it, and an admin's PATCH {status: active} undoes it.

const DAY = 86_400_000;
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

function helpers(get: () => LifecycleEnv) {
  const base = () => `http://127.0.0.1:${(get().warrant.app.server.address() as { port: number }).port}`;
  return {
    inject: (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
      get().warrant.app.inject({ method, url, headers: admin, ...(payload ? { payload } : {}) }),
    async agent(owner: string, connection: string, name: string, extra: object = {}): Promise<{ id: string; api_key: string }> {
      const res = await get().warrant.app.inject({ method: 'POST', url: '/v1/agents', headers: admin, payload: { name, owner, grants: [{ connection, scopes: ['items:read'] }], ...extra } });
      assert.equal(res.statusCode, 201, res.body);
      return res.json();
    },
    async proxied(key: string, connection: string, env = get()): Promise<{ status: number; body: Record<string, unknown> }> {
      const port = (env.warrant.app.server.address() as { port: number }).port;
      const res = await fetch(`http://127.0.0.1:${port}/v1/proxy/${connection}/items`, { headers: { authorization: `Bearer ${key}` } });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : {} };
    },
    /** The owner row disappears (an agent older than owner records, or a row removed by hand). */
    forgetOwner: (owner: string, env = get()) => env.warrant.store.db.deleteFrom('owners').where('id', '=', owner).execute(),
    orphanedEvents: async (env = get()) => env.warrant.audit.query({ type: 'agent.orphaned', limit: 1000 }),
    base,
  };
}

const eventsFor = (entries: AuditEntry[], agentId: string) => entries.filter((e) => e.subject === `agent:${agentId}`);

for (const kind of storeKinds) describe(`orphans are announced once per episode (${kind.name})`, { skip: kind.skip }, () => {
  let env: LifecycleEnv;
  let t = Date.now();
  const h = helpers(() => env);
  let aliceConn: string;
  const published: AuditEntry[] = [];
  let fresh: { id: string; api_key: string };
  let ghost: { id: string; api_key: string };
  let olga: { id: string; api_key: string };

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 600 }, store: kind.name, now: () => t, env: { WARRANT_AGENT_IDLE_DAYS: '10' } });
    env.warrant.bus.on('agent.orphaned', (e) => published.push(e));
    aliceConn = await env.connect('alice@example.com', ['items:read']);
    fresh = await h.agent('alice@example.com', aliceConn, 'fresh');
    ghost = await h.agent('ghost@example.com', await env.connect('ghost@example.com', ['items:read']), 'ghost');
    olga = await h.agent('olga@example.com', await env.connect('olga@example.com', ['items:read']), 'olga');
  });
  after(async () => env?.cleanup());

  test('owner unknown and owner offboarded: one agent.orphaned each, however many sweeps', async () => {
    await h.forgetOwner('ghost@example.com');
    await env.warrant.store.db.updateTable('owners').set({ status: 'offboarded', offboarded_at: t }).where('id', '=', 'olga@example.com').execute();
    const first = await env.warrant.agents.orphanSweep.sweep();
    assert.equal(first.announced, 2, JSON.stringify(first));
    assert.equal(first.suspended, 0, 'the default policy only reports');
    for (let i = 0; i < 3; i++) assert.equal((await env.warrant.agents.orphanSweep.sweep()).announced, 0);

    const events = await h.orphanedEvents();
    assert.equal(events.length, 2);
    assert.deepEqual(eventsFor(events, ghost.id)[0]!.data.reasons, ['owner_unknown']);
    assert.deepEqual(eventsFor(events, olga.id)[0]!.data.reasons, ['owner_offboarded']);
    assert.equal(eventsFor(events, olga.id)[0]!.data.action, 'reported');
    assert.equal(eventsFor(events, olga.id)[0]!.actor, 'system');
    assert.equal(published.length, 2, 'published on the bus (webhooks) once each');

    const listed = await h.inject('GET', '/v1/agents?orphaned=true');
    const reasons = Object.fromEntries(listed.json().agents.map((a: { id: string; orphan_reasons: string[] }) => [a.id, a.orphan_reasons]));
    assert.deepEqual(reasons, { [ghost.id]: ['owner_unknown'], [olga.id]: ['owner_offboarded'] });
    assert.equal((await h.proxied(ghost.api_key, (await env.warrant.agents.get(ghost.id)).grants[0]!.connection)).status, 200, 'reported, not suspended');
  });

  test('idle after WARRANT_AGENT_IDLE_DAYS (injected clock); use ends the episode, a later idleness is announced again', async () => {
    t += 9 * DAY;
    assert.equal((await env.warrant.agents.orphanSweep.sweep()).announced, 0, '9 days unused is not idle yet');
    t += 2 * DAY;
    const r = await env.warrant.agents.orphanSweep.sweep();
    assert.equal(r.announced, 1, 'only the agent not yet announced: the others are in their episode already');
    const [idle] = eventsFor(await h.orphanedEvents(), fresh.id);
    assert.deepEqual(idle!.data.reasons, ['idle']);
    assert.equal(idle!.data.idle_days, 10);
    assert.ok((await h.inject('GET', '/v1/agents?orphaned=true')).json().agents.some((a: { id: string; orphan_reasons: string[] }) => a.id === fresh.id && a.orphan_reasons.includes('idle')));

    // An authenticated request is a use (last_used_at, written at most once a minute).
    await env.warrant.agents.authenticate(fresh.api_key);
    await env.warrant.agents.settle();
    const back = await env.warrant.agents.orphanSweep.sweep();
    assert.equal(back.recovered, 1, 'the used agent is no longer an orphan: its episode ends');
    assert.equal(back.announced, 0);
    assert.ok(!(await h.inject('GET', '/v1/agents?orphaned=true')).json().agents.some((a: { id: string }) => a.id === fresh.id));

    t += 11 * DAY;
    assert.equal((await env.warrant.agents.orphanSweep.sweep()).announced, 1);
    assert.equal(eventsFor(await h.orphanedEvents(), fresh.id).length, 2, 'a new episode, a new event');
    assert.equal(eventsFor(await h.orphanedEvents(), ghost.id).length, 1, 'still one for the agent orphaned all along');
  });
});

describe('WARRANT_ORPHAN_POLICY=suspend (sqlite)', () => {
  let env: LifecycleEnv;
  let t = Date.now();
  const h = helpers(() => env);
  let conn: string;

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 600 }, now: () => t, env: { WARRANT_ORPHAN_POLICY: 'suspend', WARRANT_AGENT_IDLE_DAYS: '0' } });
    conn = await env.connect('alice@example.com', ['items:read']);
  });
  after(async () => env?.cleanup());

  test('an orphan is suspended: its key gets agent_suspended saying how to undo it; an admin reactivates it', async () => {
    const xavierConn = await env.connect('xavier@example.com', ['items:read']);
    const x = await h.agent('xavier@example.com', xavierConn, 'xavier-bot');
    assert.equal((await h.proxied(x.api_key, xavierConn)).status, 200, 'cached as active first');
    const expiring = await h.agent('alice@example.com', conn, 'expiring', { expires_at: new Date(t + 3_600_000).toISOString() });
    await h.forgetOwner('xavier@example.com');
    t += 2 * 3_600_000;

    const r = await env.warrant.agents.orphanSweep.sweep();
    assert.equal(r.announced, 2);
    assert.equal(r.suspended, 1, 'an agent that is only expired is refused already: not suspended');

    const refused = await h.proxied(x.api_key, xavierConn);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.code, 'agent_suspended');
    assert.deepEqual(refused.body.reasons, ['owner_unknown']);
    assert.match(String(refused.body.detail), new RegExp(`PATCH /v1/agents/${x.id} \\{"status":"active"\\}`));
    assert.ok(!JSON.stringify(refused.body).includes(x.api_key.slice('wrt_'.length + 13)), 'never the key');

    const view = (await h.inject('GET', `/v1/agents/${x.id}`)).json();
    assert.equal(view.status, 'suspended');
    assert.deepEqual(view.suspended_reasons, ['owner_unknown']);
    assert.equal(typeof view.suspended_at, 'string');
    const orphans = (await h.inject('GET', '/v1/agents?orphaned=true')).json().agents;
    assert.equal(orphans.find((a: { id: string }) => a.id === x.id)?.status, 'suspended');
    assert.equal((await h.inject('GET', '/v1/agents?status=suspended')).json().agents.length, 1);
    const events = await h.orphanedEvents();
    assert.equal(eventsFor(events, x.id)[0]!.data.action, 'suspended');
    assert.equal(eventsFor(events, expiring.id)[0]!.data.action, 'reported');
    assert.equal((await env.warrant.audit.query({ type: 'agent.suspended', subject: `agent:${x.id}` })).length, 1);

    const back = await h.inject('PATCH', `/v1/agents/${x.id}`, { status: 'active' });
    assert.equal(back.statusCode, 200, back.body);
    assert.equal(back.json().status, 'active');
    assert.equal(back.json().suspended_at, undefined);
    assert.equal((await h.proxied(x.api_key, xavierConn)).status, 200, 'the same key works again');
    assert.equal((await env.warrant.audit.query({ type: 'agent.reactivated', subject: `agent:${x.id}` })).length, 1);
    // The admin's decision stands for this episode: the next sweeps neither announce nor suspend it again.
    assert.deepEqual(await env.warrant.agents.orphanSweep.sweep(), { announced: 0, suspended: 0, recovered: 0 });
    assert.equal((await h.proxied(x.api_key, xavierConn)).status, 200);
    // WARRANT_AGENT_IDLE_DAYS=0: idleness is not looked at, however long agents go unused.
    const unused = await h.agent('alice@example.com', conn, 'unused');
    t += 400 * 86_400_000;
    assert.equal((await env.warrant.agents.orphanSweep.sweep()).announced, 0);
    assert.ok(!(await h.inject('GET', '/v1/agents?orphaned=true')).json().agents.some((a: { id: string }) => a.id === unused.id));
    t -= 400 * 86_400_000;
  });

  test('an admin suspends by hand (reason admin) and reactivates; both idempotent, audited once', async () => {
    const y = await h.agent('alice@example.com', conn, 'yolanda');
    for (let i = 0; i < 2; i++) assert.equal((await h.inject('PATCH', `/v1/agents/${y.id}`, { status: 'suspended' })).json().status, 'suspended');
    const refused = await h.proxied(y.api_key, conn);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.code, 'agent_suspended');
    assert.deepEqual(refused.body.reasons, ['admin']);
    assert.equal((await env.warrant.audit.query({ type: 'agent.suspended', subject: `agent:${y.id}` })).length, 1);
    for (let i = 0; i < 2; i++) assert.equal((await h.inject('PATCH', `/v1/agents/${y.id}`, { status: 'active' })).json().status, 'active');
    assert.equal((await h.proxied(y.api_key, conn)).status, 200);
    assert.equal((await env.warrant.audit.query({ type: 'agent.reactivated', subject: `agent:${y.id}` })).length, 1);
    // A suspended agent can still be revoked for good.
    await h.inject('PATCH', `/v1/agents/${y.id}`, { status: 'suspended' });
    assert.equal((await h.inject('DELETE', `/v1/agents/${y.id}`)).json().status, 'revoked');
    assert.equal((await h.proxied(y.api_key, conn)).body.code, 'agent_unauthenticated');
  });
});

describe('two instances on one PostgreSQL: one event per orphan, the suspension and a narrowing bite on both', { skip: skipWithoutPostgres }, () => {
  let a: LifecycleEnv;
  let b: LifecycleEnv;
  const ha = helpers(() => a);

  before(async () => {
    a = await startLifecycle({ sandbox: { accessTokenTtl: 600 }, store: 'postgres', env: { WARRANT_ORPHAN_POLICY: 'suspend', WARRANT_AGENT_IDLE_DAYS: '0' } });
    b = await startLifecycle({
      sharedSandbox: a.sandbox,
      store: 'postgres',
      env: { WARRANT_ORPHAN_POLICY: 'suspend', WARRANT_AGENT_IDLE_DAYS: '0' },
      shared: { pgSchema: a.env.WARRANT_TEST_PG_SCHEMA, masterKey: a.env.WARRANT_MASTER_KEY!, providersFile: a.providersFile },
    });
  });
  after(async () => {
    await b?.cleanup();
    await a?.cleanup();
  });

  test('concurrent sweeps on both instances (with and without the lock): exactly one event and one suspension per orphan', async () => {
    const conn = await a.connect('zed@example.com', ['items:read']);
    const bots = await Promise.all([1, 2, 3].map((i) => ha.agent('zed@example.com', conn, `zed-bot-${i}`)));
    // Cached as active on b first (a key made on a is known on b within a second of its first use).
    for (const bot of bots) await eventually(async () => (await ha.proxied(bot.api_key, conn, b)).status === 200, 3_000);
    await ha.forgetOwner('zed@example.com');
    const reports = await Promise.all([
      a.warrant.agents.orphanSweep.sweep({ lock: false }),
      b.warrant.agents.orphanSweep.sweep({ lock: false }),
      a.warrant.agents.orphanSweep.sweep(),
      b.warrant.agents.orphanSweep.sweep(),
    ]);
    assert.equal(reports.reduce((n, r) => n + r.announced, 0), 3, JSON.stringify(reports));
    assert.equal(reports.reduce((n, r) => n + r.suspended, 0), 3);
    assert.equal((await b.warrant.agents.orphanSweep.sweep()).announced, 0);
    const events = await ha.orphanedEvents();
    for (const bot of bots) assert.equal(eventsFor(events, bot.id).length, 1, bot.id);
    assert.equal((await a.warrant.audit.query({ type: 'agent.suspended' })).length, 3);
    // Suspended on both instances within the key cache bound (the invalidation makes it sooner).
    for (const bot of bots) {
      for (const env of [a, b]) await eventually(async () => (await ha.proxied(bot.api_key, conn, env)).body.code === 'agent_suspended', 6_000);
    }
  });

  test('a narrowing made on one instance is enforced on the other within the key cache bound', async () => {
    const conn = await a.connect('nora@example.com', ['items:read', 'items:write']);
    const created = await a.warrant.app.inject({
      method: 'POST',
      url: '/v1/agents',
      headers: admin,
      payload: { name: 'nora-bot', owner: 'nora@example.com', grants: [{ connection: conn, scopes: ['items:read', 'items:write'] }] },
    });
    const bot = created.json() as { id: string; api_key: string };
    const post = async (env: LifecycleEnv) => {
      const port = (env.warrant.app.server.address() as { port: number }).port;
      const res = await fetch(`http://127.0.0.1:${port}/v1/proxy/${conn}/items`, {
        method: 'POST',
        headers: { authorization: `Bearer ${bot.api_key}`, 'content-type': 'application/json' },
        body: '{"name":"n"}',
      });
      await res.arrayBuffer();
      return res.status;
    };
    // A key made on another instance is known on b within a second of its first use (agents/auth.ts).
    await eventually(async () => (await post(b)) < 400, 3_000);
    const res = await ha.inject('PATCH', `/v1/agents/${bot.id}`, { grants: [{ connection: conn, scopes: ['items:read'] }] });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(await post(a), 403);
    await eventually(async () => (await post(b)) === 403, 6_000);
    assert.equal((await ha.proxied(bot.api_key, conn, b)).status, 200, 'the kept scope still works on b with the same key');
  });
});
