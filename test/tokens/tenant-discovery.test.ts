import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { ServerResponse } from 'node:http';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { isWarrantError, type WarrantError } from '../../src/errors/index.ts';

// Tenant discovery after consent (issue 9): Xero's and Atlassian's grants reach tenants the user
// picks on the consent screen, and every API call must name one (`Xero-tenant-id: {tenant_id}`,
// `/ex/jira/{cloud_id}/…`). Without discovery a connection held no tenant and every call failed.
// The IdP is the sandbox; the discovery endpoints are a loopback server shaped as Xero's
// `GET /connections` and Atlassian's `accessible-resources`.

const T1 = '0b8f4a5e-1c3d-4e5f-8a9b-0c1d2e3f4a5b';
const T2 = '7d6c5b4a-3e2f-4a1b-9c8d-7e6f5a4b3c2d';
const T3 = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';

const xeroTenant = (tenantId: string, name: string) => ({ id: `conn-${name}`, authEventId: 'ae', tenantId, tenantType: 'ORGANISATION', tenantName: name });
const atlassianSite = (id: string, name: string) => ({ id, url: `https://${name}.atlassian.net`, name, scopes: ['read:jira-work'], avatarUrl: 'https://x/a.png' });

const json = (body: unknown, status = 200) => (res: ServerResponse) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

describe('tenant discovery after consent: the tenant the grant reaches becomes a connection param', () => {
  let env: LifecycleEnv;
  let api: Receiver;
  const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };

  before(async () => {
    api = await startReceiver();
    env = await startLifecycle({
      sandbox: { accessTokenTtl: 600 },
      logLevel: 'info',
      env: { WARRANT_HTTP_TIMEOUT_MS: '1500' },
      providers: [
        {
          extends: 'sandbox',
          id: 'xero-like',
          environments: { production: { api_base_url: `${api.url}/xero/api.xro/2.0` } },
          connection_params: { tenant_id: { from: 'connection', type: 'uuid' } },
          api_headers: { 'Xero-tenant-id': '{tenant_id}' },
          tenant_discovery: { url: `${api.url}/connections`, param: 'tenant_id', field: 'tenantId' },
        },
        {
          extends: 'sandbox',
          id: 'atlassian-like',
          environments: { production: { api_base_url: `${api.url}/ex/jira/{cloud_id}` } },
          connection_params: { cloud_id: { from: 'connection', type: 'uuid' } },
          tenant_discovery: { url: `${api.url}/oauth/token/accessible-resources`, param: 'cloud_id', field: 'id' },
        },
        {
          extends: 'sandbox',
          id: 'listed',
          connection_params: { org: { from: 'connection', type: 'uuid' } },
          tenant_discovery: { url: `${api.url}/orgs`, param: 'org', field: 'org.id', list: 'data.orgs' },
        },
      ],
    });
  });
  after(async () => {
    await env?.cleanup();
    await api?.close();
  });

  /** The whole flow as one browser; the callback's outcome, or the error it threw. */
  async function connect(provider: string, owner: string, params?: Record<string, string>) {
    const s = await env.warrant.connect.createSession({ provider, owner, scopes: ['items:read'], ...(params ? { params } : {}) });
    return callbackOf(s.authorize_url, s.id);
  }

  async function callbackOf(link: string, session: string) {
    const opened = await env.warrant.connect.openLink(link);
    const back = new URL(await env.sandbox.authorize(Object.fromEntries(new URL(opened.location).searchParams) as never));
    try {
      return { session, outcome: await env.warrant.connect.handleCallback(back.searchParams, opened.cookieHeader, back.pathname) };
    } catch (err) {
      return { session, err: err as WarrantError };
    }
  }

  const paramsOf = async (id: string) => JSON.parse((await env.warrant.connections.get(id)).params) as Record<string, string>;
  const connectionsOf = async (owner: string) => (await env.warrant.connections.list({ owner })).length;

  async function proxy(id: string, owner: string, path: string) {
    const agent = await env.warrant.app.inject({ method: 'POST', url: '/v1/agents', headers, payload: { name: `a-${id}`, owner, grants: [{ connection: id, scopes: ['items:read'] }] } });
    assert.equal(agent.statusCode, 201, agent.body);
    const base = `http://127.0.0.1:${(env.warrant.app.server.address() as AddressInfo).port}`;
    return fetch(`${base}/v1/proxy/${id}${path}`, { headers: { authorization: `Bearer ${agent.json().api_key}` } });
  }

  test('Xero /connections: the first tenant is taken, asked for with the new token; calls carry Xero-tenant-id', async () => {
    api.answer('/connections', json([xeroTenant(T1, 'Demo Co'), xeroTenant(T2, 'Other Co')]));
    const seen = api.at('/connections').length;
    const { outcome, err } = await connect('xero-like', 'x1@example.com');
    assert.equal(err, undefined, String(err));
    const id = outcome!.connection!.id;
    assert.deepEqual(await paramsOf(id), { tenant_id: T1 });

    const asked = api.at('/connections').slice(seen);
    assert.equal(asked.length, 1);
    const token = await env.warrant.store.vault.get({ scope: 'connection', ref: id, field: 'access_token' });
    assert.equal(asked[0]!.headers.authorization, `Bearer ${token}`);
    assert.equal(asked[0]!.headers.accept, 'application/json');
    const line = env.logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'tenant discovery: the grant reaches 2 tenant(s)');
    assert.equal(line?.found, 2);
    assert.equal(line?.param, 'tenant_id');
    assert.ok(!env.logs.text().includes(token!), 'a token in the logs');

    const res = await proxy(id, 'x1@example.com', '/items');
    assert.equal(res.status, 200, await res.clone().text());
    const call = api.at('/xero/api.xro/2.0/items').at(-1)!;
    assert.equal(call.headers['xero-tenant-id'], T1);
  });

  test('a tenant named when the session starts must be one the grant reaches: then it is the one stored', async () => {
    api.answer('/connections', json([xeroTenant(T1, 'Demo Co'), xeroTenant(T2, 'Other Co')]));
    const { outcome, err } = await connect('xero-like', 'x2@example.com', { tenant_id: T2 });
    assert.equal(err, undefined, String(err));
    assert.deepEqual(await paramsOf(outcome!.connection!.id), { tenant_id: T2 });
  });

  test('a tenant the grant does not reach fails the connect with tenant_mismatch; nothing is stored', async () => {
    api.answer('/connections', json([xeroTenant(T1, 'Demo Co')]));
    const { session, err } = await connect('xero-like', 'x3@example.com', { tenant_id: T3 });
    assert.ok(isWarrantError(err, 'invalid_request'), String(err));
    assert.equal(err.members.error, 'tenant_mismatch');
    assert.equal(err.members.field, 'params.tenant_id');
    assert.match(err.detail!, /not among the 1 tenant_id/);
    const s = await env.warrant.connect.getSession(session);
    assert.equal(s.status, 'failed');
    assert.equal(s.error, 'tenant_mismatch');
    assert.equal(await connectionsOf('x3@example.com'), 0);
  });

  test('an empty list (the user picked no organisation) fails with no_tenant, saying what to do; nothing is stored', async () => {
    api.answer('/connections', json([]));
    const { session, err } = await connect('xero-like', 'x4@example.com');
    assert.ok(isWarrantError(err, 'conflict'), String(err));
    assert.equal(err.members.error, 'no_tenant');
    assert.match(err.detail!, /reaches no tenant_id/);
    assert.match(err.detail!, /Connect again and pick one/);
    assert.equal((await env.warrant.connect.getSession(session)).error, 'no_tenant');
    assert.equal(await connectionsOf('x4@example.com'), 0);
  });

  test('Atlassian accessible-resources: the site id becomes cloud_id and fills the API base URL', async () => {
    api.answer('/oauth/token/accessible-resources', json([atlassianSite(T3, 'acme')]));
    const { outcome, err } = await connect('atlassian-like', 'a1@example.com');
    assert.equal(err, undefined, String(err));
    const id = outcome!.connection!.id;
    assert.deepEqual(await paramsOf(id), { cloud_id: T3 });
    const res = await proxy(id, 'a1@example.com', '/items');
    assert.equal(res.status, 200);
    assert.equal(api.at(`/ex/jira/${T3}/items`).length, 1);
  });

  test('an answer holding the list under `list`, with a nested `field`', async () => {
    api.answer('/orgs', json({ data: { orgs: [{ org: { id: T2 } }, { org: {} }] } }));
    const { outcome, err } = await connect('listed', 'l1@example.com');
    assert.equal(err, undefined, String(err));
    assert.deepEqual(await paramsOf(outcome!.connection!.id), { org: T2 });
  });

  test('a value that is not what the param type says is refused, naming the field; nothing is stored', async () => {
    api.answer('/oauth/token/accessible-resources', json([atlassianSite('../../admin?', 'evil')]));
    const { session, err } = await connect('atlassian-like', 'a2@example.com');
    assert.ok(isWarrantError(err, 'invalid_request'), String(err));
    assert.equal(err.members.field, 'tenant_discovery.id');
    assert.equal((await env.warrant.connect.getSession(session)).status, 'failed');
    assert.equal(await connectionsOf('a2@example.com'), 0);
  });

  test('a failing, redirecting, oversized or silent discovery endpoint fails the connect (tenant_discovery_failed) within the IdP timeout', async () => {
    const cases: [string, (res: ServerResponse) => void][] = [
      ['HTTP 500', json({ error: 'boom' }, 500)],
      ['HTTP 302', (res) => res.writeHead(302, { location: `${api.url}/elsewhere` }).end()],
      ['larger than', (res) => res.writeHead(200, { 'content-type': 'application/json' }).end(`[${'"x",'.repeat(300_000)}"x"]`)],
      ['not JSON', (res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>')],
      ['not a list', json({ tenants: [] })],
      ['within 1500 ms', () => {}],
    ];
    for (const [i, [why, answer]] of cases.entries()) {
      const owner = `f${i}@example.com`;
      api.answer('/connections', answer);
      const started = Date.now();
      const { session, err } = await connect('xero-like', owner);
      assert.ok(isWarrantError(err, 'upstream_unavailable'), `${why}: ${String(err)}`);
      assert.equal(err.members.error, 'tenant_discovery_failed');
      assert.match(err.detail!, new RegExp(why), why);
      assert.ok(Date.now() - started < 5_000, `${why} took ${Date.now() - started} ms`);
      assert.equal((await env.warrant.connect.getSession(session)).error, 'tenant_discovery_failed');
      assert.equal(await connectionsOf(owner), 0, why);
    }
    assert.equal(api.at('/elsewhere').length, 0, 'a redirect was followed');
  });

  test('a re-connect discovers again: the connection keeps its tenant only if the new grant still reaches it', async () => {
    api.answer('/connections', json([xeroTenant(T1, 'Demo Co')]));
    const { outcome } = await connect('xero-like', 'r1@example.com');
    const id = outcome!.connection!.id;
    await env.warrant.store.connections.update(id, { status: 'reauth_required' });

    api.answer('/connections', json([xeroTenant(T2, 'Other Co')]));
    const first = await env.warrant.reconnects.link(id);
    const refused = await callbackOf(first.url, first.session);
    assert.equal(refused.err?.members.error, 'tenant_mismatch');
    assert.equal((await env.warrant.connections.get(id)).status, 'reauth_required');

    api.answer('/connections', json([xeroTenant(T2, 'Other Co'), xeroTenant(T1, 'Demo Co')]));
    const second = await env.warrant.reconnects.link(id);
    const again = await callbackOf(second.url, second.session);
    assert.equal(again.err, undefined, String(again.err));
    assert.equal(again.outcome!.connection!.id, id);
    assert.equal((await env.warrant.connections.get(id)).status, 'active');
    assert.deepEqual(await paramsOf(id), { tenant_id: T1 });
  });
});
