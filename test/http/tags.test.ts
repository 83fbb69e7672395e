import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { isWarrantError } from '../../src/errors/index.ts';

// Tags on the HTTP API (issue 12 item 4): `end_user`, `organization` and `labels` are set when a
// connection is made (connect session, import) or an agent created, changed by PATCH, shown in
// every view, filtered on in every list (combined: all must match), audited at creation and
// carried by the webhooks about the connection or agent, so a product can route per end user.

const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe('tags on connections, connect sessions and agents', () => {
  let env: LifecycleEnv;
  let hooks: Receiver;
  const call = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) => {
    const res = await env.warrant.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
    return { status: res.statusCode, json: res.body ? res.json() : undefined, body: res.body };
  };
  const tagsOf = (v: { end_user: unknown; organization: unknown; labels: unknown }) => ({ end_user: v.end_user, organization: v.organization, labels: v.labels });
  const delivered = (type: string, subject: string) =>
    eventually(() => hooks.at('/hooks').map((r) => JSON.parse(r.body) as { type: string; data: Record<string, unknown> }).find((d) => d.type === type && d.data.subject === subject), 10_000);

  /** The owner's browser: opens the start URL, consents at the sandbox IdP, comes back to the callback. */
  async function browse(url: string) {
    const u = new URL(url);
    const start = await env.warrant.app.inject({ url: u.pathname + u.search });
    assert.equal(start.statusCode, 302, start.body);
    const cookie = String([start.headers['set-cookie']].flat()[0]).split(';')[0]!;
    const redirect = new URL(await env.sandbox.authorize(Object.fromEntries(new URL(start.headers.location as string).searchParams) as never));
    const cb = await env.warrant.app.inject({ url: `${redirect.pathname}${redirect.search}`, headers: { cookie } });
    assert.equal(cb.statusCode, 200, cb.body);
  }

  async function connectWith(owner: string, tags: object): Promise<string> {
    const started = await call('POST', '/v1/connect-sessions', { provider: 'sandbox', owner, scopes: ['items:read'], ...tags });
    assert.equal(started.status, 201, started.body);
    await browse(started.json.authorize_url);
    const session = await call('GET', `/v1/connect-sessions/${started.json.id}`);
    assert.equal(session.json.status, 'completed', session.body);
    return session.json.connection_id;
  }

  let tagged: string;

  before(async () => {
    hooks = await startReceiver();
    env = await startLifecycle({ sandbox: { accessTokenTtl: 600 }, env: { WARRANT_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.0/8' } });
    const hook = await call('POST', '/v1/webhooks', { url: `${hooks.url}/hooks`, events: ['connection.*', 'agent.*'] });
    assert.equal(hook.status, 201, hook.body);
  });
  after(async () => {
    await env?.cleanup();
    await hooks?.close();
  });

  test('set at connect time: the session shows them, the connection gets them, its creation is audited and sent with them', async () => {
    const tags = { end_user: 'user-42', organization: 'org-7', labels: { team: 'billing', 'env.tier': 'prod' } };
    const started = await call('POST', '/v1/connect-sessions', { provider: 'sandbox', owner: 'tia@example.com', scopes: ['items:read'], ...tags });
    assert.equal(started.status, 201, started.body);
    const pending = await call('GET', `/v1/connect-sessions/${started.json.id}`);
    assert.deepEqual([pending.json.status, tagsOf(pending.json)], ['pending', tags]);
    await browse(started.json.authorize_url);
    const session = await call('GET', `/v1/connect-sessions/${started.json.id}`);
    assert.deepEqual([session.json.status, tagsOf(session.json)], ['completed', tags]);
    tagged = session.json.connection_id;
    const view = await call('GET', `/v1/connections/${tagged}`);
    assert.deepEqual(tagsOf(view.json), tags);

    const [created] = await env.warrant.audit.query({ type: 'connection.created', subject: `connection:${tagged}` });
    assert.deepEqual(tagsOf(created!.data as never), tags);
    const sent = await delivered('connection.created', `connection:${tagged}`);
    assert.deepEqual(tagsOf(sent.data as never), tags);
  });

  test('a connection made without tags shows null ids and no labels', async () => {
    const id = await connectWith('una@example.com', {});
    assert.deepEqual(tagsOf((await call('GET', `/v1/connections/${id}`)).json), { end_user: null, organization: null, labels: {} });
  });

  test('import carries tags; PATCH changes them (null clears, labels replace) without touching the grant, audited with the previous ones', async () => {
    const imported = await call('POST', '/v1/connections', {
      provider: 'sandbox', owner: 'ivy@example.com', access_token: 'at-imported', scopes: ['items:read'], end_user: 'user-9', labels: { team: 'search' },
    });
    assert.equal(imported.status, 201, imported.body);
    assert.deepEqual(tagsOf(imported.json), { end_user: 'user-9', organization: null, labels: { team: 'search' } });
    const [audited] = await env.warrant.audit.query({ type: 'connection.imported', subject: `connection:${imported.json.id}` });
    assert.deepEqual(tagsOf(audited!.data as never), { end_user: 'user-9', organization: null, labels: { team: 'search' } });

    const before = await env.warrant.store.connections.get(tagged);
    const patched = await call('PATCH', `/v1/connections/${tagged}`, { organization: null, labels: { team: 'growth' } });
    assert.equal(patched.status, 200, patched.body);
    assert.deepEqual(tagsOf(patched.json), { end_user: 'user-42', organization: null, labels: { team: 'growth' } });
    const after = await env.warrant.store.connections.get(tagged);
    assert.equal(after!.version, before!.version, 'a tag change is not a token write');
    assert.equal(after!.expires_at, before!.expires_at);
    const [entry] = await env.warrant.audit.query({ type: 'connection.tags_updated', subject: `connection:${tagged}` });
    assert.deepEqual(entry!.data.previous, { end_user: 'user-42', organization: 'org-7', labels: { team: 'billing', 'env.tier': 'prod' } });
    assert.equal(entry!.actor, 'admin');
    // The same change again writes no second entry.
    await call('PATCH', `/v1/connections/${tagged}`, { organization: null });
    assert.equal((await env.warrant.audit.query({ type: 'connection.tags_updated', subject: `connection:${tagged}` })).length, 1);

    assert.deepEqual([(await call('PATCH', '/v1/connections/con_nope', { end_user: 'x' })).status], [404]);
    const empty = await call('PATCH', `/v1/connections/${tagged}`, {});
    assert.deepEqual([empty.status, empty.json.code, empty.json.field], [400, 'invalid_request', 'body']);
    const other = await call('PATCH', `/v1/connections/${tagged}`, { owner: 'mallory@example.com' });
    assert.deepEqual([other.status, other.json.field], [400, 'body.owner']);
  });

  test('agents: created with tags, shown in every view, PATCHed, and their webhooks carry the tags read at delivery', async () => {
    const created = await call('POST', '/v1/agents', {
      name: 'billing-bot', owner: 'tia@example.com', grants: [{ connection: tagged, scopes: ['items:read'] }], end_user: 'user-42', organization: 'org-7', labels: { bot: 'yes' },
    });
    assert.equal(created.status, 201, created.body);
    const tags = { end_user: 'user-42', organization: 'org-7', labels: { bot: 'yes' } };
    assert.deepEqual(tagsOf(created.json), tags);
    assert.deepEqual(tagsOf((await call('GET', `/v1/agents/${created.json.id}`)).json), tags);
    const [audited] = await env.warrant.audit.query({ type: 'agent.created', subject: `agent:${created.json.id}` });
    assert.deepEqual(tagsOf(audited!.data as never), tags);
    assert.ok(!JSON.stringify(audited).includes(created.json.api_key));

    const patched = await call('PATCH', `/v1/agents/${created.json.id}`, { end_user: 'user-43', labels: { bot: 'no', tier: 'gold' } });
    assert.equal(patched.status, 200, patched.body);
    assert.deepEqual(tagsOf(patched.json), { end_user: 'user-43', organization: 'org-7', labels: { bot: 'no', tier: 'gold' } });
    const [changed] = await env.warrant.audit.query({ type: 'agent.tags_updated', subject: `agent:${created.json.id}` });
    assert.deepEqual(changed!.data.previous, tags);
    // The key still works after a tag change.
    const port = (env.warrant.app.server.address() as { port: number }).port;
    const proxied = await fetch(`http://127.0.0.1:${port}/v1/proxy/${tagged}/items`, { headers: { authorization: `Bearer ${created.json.api_key}` } });
    assert.equal(proxied.status, 200);

    // `agent.suspended` holds no tags of its own: the delivery reads the agent's.
    assert.equal((await call('PATCH', `/v1/agents/${created.json.id}`, { status: 'suspended' })).status, 200);
    const sent = await delivered('agent.suspended', `agent:${created.json.id}`);
    assert.deepEqual(tagsOf(sent.data as never), { end_user: 'user-43', organization: 'org-7', labels: { bot: 'no', tier: 'gold' } });
  });

  test('list filters: end_user, organization and repeatable label=k=v / label=k, all of which must match', async () => {
    const a = await connectWith('fil@example.com', { end_user: 'f-1', organization: 'f-org', labels: { team: 'ops', env: 'prod' } });
    const b = await connectWith('fil@example.com', { end_user: 'f-2', organization: 'f-org', labels: { team: 'ops', env: 'dev' } });
    const c = await connectWith('fil@example.com', { end_user: 'f-1', organization: 'f-org-2', labels: { team: 'web' } });
    const ids = async (q: string) => ((await call('GET', `/v1/connections?${q}`)).json.connections as { id: string }[]).map((x) => x.id).sort();
    assert.deepEqual(await ids('end_user=f-1'), [a, c].sort());
    assert.deepEqual(await ids('organization=f-org'), [a, b].sort());
    assert.deepEqual(await ids('organization=f-org&label=env'), [a, b].sort());
    assert.deepEqual(await ids('organization=f-org&label=team=ops&label=env=prod'), [a]);
    assert.deepEqual(await ids('owner=fil%40example.com&end_user=f-1&label=team=web'), [c]);
    assert.deepEqual(await ids('end_user=f-2&label=team=web'), []);

    const agent = async (connection: string, extra: object) => {
      const res = await call('POST', '/v1/agents', { name: 'filter-agent', owner: 'fil@example.com', grants: [{ connection, scopes: ['items:read'] }], ...extra });
      assert.equal(res.status, 201, res.body);
      return res.json.id as string;
    };
    const x = await agent(a, { end_user: 'f-1', labels: { role: 'reader', team: 'ops' } });
    const y = await agent(b, { end_user: 'f-2', labels: { role: 'writer', team: 'ops' } });
    const agents = async (q: string) => ((await call('GET', `/v1/agents?${q}`)).json.agents as { id: string }[]).map((z) => z.id).sort();
    assert.deepEqual(await agents('owner=fil%40example.com&label=team=ops'), [x, y].sort());
    assert.deepEqual(await agents('label=team=ops&label=role=writer'), [y]);
    assert.deepEqual(await agents('end_user=f-1&label=role'), [x]);
    assert.deepEqual(await agents('end_user=f-1&status=revoked'), []);
    // The orphan list filters the same way: revoking b's connection leaves y without a usable one.
    await call('DELETE', `/v1/connections/${b}`);
    assert.deepEqual(await agents('orphaned=true&label=team=ops'), [y]);
    assert.deepEqual(await agents('orphaned=true&end_user=f-1'), []);
  });

  test('a re-connect keeps the connection its tags; the revocation entry and its webhook carry them too', async () => {
    const id = await connectWith('rex@example.com', { end_user: 'r-1', labels: { team: 'ops' } });
    assert.equal((await call('PATCH', `/v1/connections/${id}`, { organization: 'r-org' })).status, 200);
    const t = await env.warrant.tokens.getFreshToken(id);
    await env.sandbox.revokeGrantOf(t.accessToken);
    assert.ok(isWarrantError(await env.warrant.connections.forceRefresh(id, 'test').catch((e: unknown) => e), 'reauth_required'));
    const link = await call('POST', `/v1/connections/${id}/reconnect-link`);
    assert.equal(link.status, 201, link.body);
    const session = await call('GET', `/v1/connect-sessions/${link.json.session}`);
    assert.deepEqual(tagsOf(session.json), { end_user: 'r-1', organization: 'r-org', labels: { team: 'ops' } });
    await browse(link.json.url);
    const view = await call('GET', `/v1/connections/${id}`);
    assert.deepEqual([view.json.status, tagsOf(view.json)], ['active', { end_user: 'r-1', organization: 'r-org', labels: { team: 'ops' } }]);

    const revoked = await call('DELETE', `/v1/connections/${id}`);
    assert.equal(revoked.status, 200, revoked.body);
    const [entry] = await env.warrant.audit.query({ type: 'connection.revoked', subject: `connection:${id}` });
    assert.deepEqual(tagsOf(entry!.data as never), { end_user: 'r-1', organization: 'r-org', labels: { team: 'ops' } });
    const sent = await delivered('connection.revoked', `connection:${id}`);
    assert.deepEqual(tagsOf(sent.data as never), { end_user: 'r-1', organization: 'r-org', labels: { team: 'ops' } });
  });

  test('invalid tags are invalid_request naming the field', async () => {
    const base = { provider: 'sandbox', owner: 'bad@example.com', scopes: ['items:read'] };
    const cases: [string, string, object, string][] = [
      ['POST', '/v1/connect-sessions', { ...base, labels: { 'Bad Key': 'x' } }, 'body.labels.Bad Key'],
      ['POST', '/v1/connect-sessions', { ...base, labels: { '-lead': 'x' } }, 'body.labels.-lead'],
      ['POST', '/v1/connect-sessions', { ...base, labels: { ok: 'v'.repeat(257) } }, 'body.labels.ok'],
      ['POST', '/v1/connect-sessions', { ...base, labels: { ok: 1 } }, 'body.labels.ok'],
      ['POST', '/v1/connect-sessions', { ...base, labels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) }, 'body.labels'],
      ['POST', '/v1/connect-sessions', { ...base, end_user: 'u'.repeat(257) }, 'body.end_user'],
      ['POST', '/v1/connections', { ...base, access_token: 'at', organization: '' }, 'body.organization'],
      ['POST', '/v1/agents', { name: 'n', owner: 'bad@example.com', grants: [{ connection: tagged, scopes: ['items:read'] }], labels: { UPPER: 'x' } }, 'body.labels.UPPER'],
      ['PATCH', `/v1/connections/${tagged}`, { labels: { 'a b': 'x' } }, 'body.labels.a b'],
      ['PATCH', `/v1/connections/${tagged}`, { labels: null }, 'body.labels'],
      ['GET', '/v1/connections?label=Team=x', {}, 'query.label'],
      ['GET', '/v1/connections?label==x', {}, 'query.label'],
      ['GET', `/v1/agents?label=team=ops&label=${encodeURIComponent('bad key')}`, {}, 'query.label'],
      ['GET', `/v1/agents?end_user=${'u'.repeat(257)}`, {}, 'query.end_user'],
    ];
    for (const [method, url, payload, field] of cases) {
      const res = await call(method as 'GET', url, method === 'GET' ? undefined : payload);
      assert.deepEqual([res.status, res.json.code, res.json.field], [400, 'invalid_request', field], `${method} ${url} ${JSON.stringify(payload).slice(0, 80)}: ${res.body}`);
    }
  });
});
