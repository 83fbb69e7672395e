import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { startIdpEndpoint, json, type IdpEndpoint } from '../oauth/idp-endpoint.ts';
import { providerSchema } from '../../src/providers/index.ts';

// Placeholder injection (security review, high 5): connection params were substituted into
// endpoint URLs as raw strings, from the connect session, the callback (QuickBooks realmId), the
// token response (Salesforce instance_url) and import. Each entry now refuses a value that is not
// what its type says, with invalid_request naming it, before anything is sent; the proxy refuses
// a bad value already stored. A loopback server counts every TCP connection a leak would make.

const injections = ['evil.example/x?', '169.254.169.254/latest/meta-data?', '%2F..', 'acme\r\nHost: evil.example', 'a.b'];

interface Counter {
  url: string;
  connections: number;
  paths: string[];
  close(): Promise<void>;
}

async function startCounter(): Promise<Counter> {
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    counter.paths.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"items":[]}');
  });
  server.on('connection', (s: Socket) => {
    counter.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const counter: Counter = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: 0,
    paths: [],
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return counter;
}

describe('connection params: typed, checked where they enter, nothing sent on a bad one', () => {
  let env: LifecycleEnv;
  let counter: Counter;
  let idp: IdpEndpoint;
  const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const admin = (method: 'GET' | 'POST', url: string, payload?: object) => env.warrant.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });

  before(async () => {
    counter = await startCounter();
    idp = await startIdpEndpoint();
    env = await startLifecycle({ sandbox: { accessTokenTtl: 60 } });
    const sandbox = env.sandbox.providerDefinition('x');
    const define = (def: object) => {
      const p = providerSchema.parse(def);
      env.warrant.catalog.set(p.id, p);
    };
    // Shopify-like: every URL on the shop's host.
    define({
      id: 'inj-shop',
      auth: 'oauth2',
      client_id: 'c',
      environments: { production: { authorization_url: 'https://{shop}.myshopify.com/admin/oauth/authorize', token_url: 'https://{shop}.myshopify.com/admin/oauth/access_token', api_base_url: 'https://{shop}.myshopify.com/admin/api' } },
      connection_params: { shop: { from: 'connection', type: 'hostname_label' } },
    });
    // QuickBooks-like: the sandbox IdP, an API base (the counter) with the realm id from the callback.
    define({
      ...sandbox,
      id: 'inj-realm',
      environments: { production: { ...sandbox.environments!.production!, api_base_url: `${counter.url}/v3/company/{realm_id}` } },
      connection_params: { realm_id: { from: 'callback', field: 'realmId', type: 'numeric_id' } },
    });
    // Salesforce-like: a scripted token endpoint whose answer carries the API host.
    define({
      id: 'inj-instance',
      auth: 'oauth2',
      client_id: 'c',
      client_secret: 's',
      environments: { production: { authorization_url: `${idp.url}/authorize`, token_url: `${idp.url}/token`, api_base_url: '{instance_url}/services/data/v62.0' } },
      connection_params: { instance_url: { from: 'token_response', type: 'https_origin', suffix: ['.salesforce.com', '.force.com'] } },
    });
  });
  after(async () => {
    await env?.cleanup();
    await counter?.close();
    await idp?.close();
  });

  test('a connect session with a bad param is refused, naming it; no session is made', async () => {
    const before = await env.warrant.store.db.selectFrom('connect_sessions').select('id').execute();
    for (const shop of injections) {
      const res = await admin('POST', '/v1/connect-sessions', { provider: 'inj-shop', owner: 'o@example.com', scopes: [], params: { shop } });
      assert.equal(res.statusCode, 400, shop);
      assert.equal(res.json().code, 'invalid_request');
      assert.equal(res.json().field, 'params.shop');
    }
    assert.equal((await env.warrant.store.db.selectFrom('connect_sessions').select('id').execute()).length, before.length);
    const missing = await admin('POST', '/v1/connect-sessions', { provider: 'inj-shop', owner: 'o@example.com', scopes: [] });
    assert.equal(missing.statusCode, 400);
    assert.equal(missing.json().field, 'params.shop');
    const ok = await admin('POST', '/v1/connect-sessions', { provider: 'inj-shop', owner: 'o@example.com', scopes: [], params: { shop: 'acme' } });
    assert.equal(ok.statusCode, 201, ok.body);
    const idp = new URL((await env.warrant.connect.openLink(ok.json().connect_url)).location);
    assert.equal(idp.origin + idp.pathname, 'https://acme.myshopify.com/admin/oauth/authorize');
  });

  test('an import with a bad param is refused, naming it; no connection is made', async () => {
    for (const shop of injections) {
      const res = await admin('POST', '/v1/connections', { provider: 'inj-shop', owner: 'o@example.com', access_token: 'at', scopes: [], params: { shop } });
      assert.equal(res.statusCode, 400, shop);
      assert.equal(res.json().field, 'params.shop');
    }
    assert.equal((await env.warrant.connections.list({ provider: 'inj-shop' })).length, 0);
  });

  /** Through the sandbox IdP up to its redirect back, as one browser. */
  async function consent(provider: string) {
    const s = await env.warrant.connect.createSession({ provider, owner: 'q@example.com', scopes: ['items:read'] });
    const opened = await env.warrant.connect.openLink(s.authorize_url);
    return { s, opened, redirect: new URL(await env.sandbox.authorize(Object.fromEntries(new URL(opened.location).searchParams) as never)) };
  }

  test('a bad realmId on the callback is refused before the code is exchanged; nothing is sent', async () => {
    for (const realm of injections) {
      const { s, opened, redirect } = await consent('inj-realm');
      redirect.searchParams.set('realmId', realm);
      const exchanges = env.sandbox.stats().authorizationCodeRequests;
      const cb = await env.warrant.app.inject({ url: `${redirect.pathname}${redirect.search}`, headers: { cookie: opened.cookieHeader } });
      assert.equal(cb.statusCode, 400, realm);
      assert.equal(cb.json().code, 'invalid_request');
      assert.equal(cb.json().field, 'query.realmId');
      assert.equal(env.sandbox.stats().authorizationCodeRequests, exchanges, 'the code was exchanged');
      assert.equal((await env.warrant.connect.getSession(s.id)).status, 'failed');
    }
    assert.equal(counter.connections, 0);
  });

  test('a good realmId makes a connection whose calls reach the API base (the counter works); a bad stored one is refused at use', async () => {
    const { opened, redirect } = await consent('inj-realm');
    redirect.searchParams.set('realmId', '9130355377391234');
    const outcome = await env.warrant.connect.handleCallback(redirect.searchParams, opened.cookieHeader);
    const id = outcome.connection!.id;
    const agent = await admin('POST', '/v1/agents', { name: 'inj', owner: 'q@example.com', grants: [{ connection: id, scopes: ['items:read'] }] });
    assert.equal(agent.statusCode, 201, agent.body);
    // The proxy is served on the raw HTTP server, ahead of Fastify's router: over the wire.
    const base = `http://127.0.0.1:${(env.warrant.app.server.address() as AddressInfo).port}`;
    const call = () => fetch(`${base}/v1/proxy/${id}/items`, { headers: { authorization: `Bearer ${agent.json().api_key}` } });
    assert.equal((await call()).status, 200);
    assert.deepEqual(counter.paths, ['/v3/company/9130355377391234/items']);

    // A value that got into the store without the check (an older Warrant): refused, never filled in.
    const seen = counter.connections;
    await env.warrant.store.connections.update(id, { params: JSON.stringify({ realm_id: '../../admin?' }) });
    // A direct edit announces nothing; every writer of connections does (TokenService.invalidate),
    // and the proxy's metadata cache is kept until announced: announce it as a writer would.
    await env.warrant.tokens.invalidate(id);
    const res = await call();
    const body = (await res.json()) as { code: string; param: string };
    assert.equal(res.status, 409, JSON.stringify(body));
    assert.equal(body.param, 'realm_id');
    assert.equal(counter.connections, seen);
  });

  test('a bad instance_url in the token response is refused, naming it; no connection is made', async () => {
    for (const instance of ['https://evil.example/x?', 'https://169.254.169.254', 'https://acme.my.salesforce.com.evil.example', 'http://acme.my.salesforce.com', 'https://acme.my.salesforce.com/%2F..']) {
      idp.answer(json(200, { access_token: 'at-value', token_type: 'Bearer', instance_url: instance }));
      const s = await env.warrant.connect.createSession({ provider: 'inj-instance', owner: 'r@example.com', scopes: [] });
      const opened = await env.warrant.connect.openLink(s.authorize_url);
      const state = new URL(opened.location).searchParams.get('state')!;
      const err = await env.warrant.connect.handleCallback(new URLSearchParams({ code: 'c', state }), opened.cookieHeader).catch((e: unknown) => e);
      assert.equal((err as { code?: string }).code, 'invalid_request', instance);
      assert.equal((err as { members: { field: string } }).members.field, 'token_response.instance_url');
      assert.equal((await env.warrant.connect.getSession(s.id)).status, 'failed');
    }
    assert.equal((await env.warrant.connections.list({ provider: 'inj-instance' })).length, 0);
    idp.answer(json(200, { access_token: 'at-value', token_type: 'Bearer', instance_url: 'https://acme.my.salesforce.com' }));
    const s = await env.warrant.connect.createSession({ provider: 'inj-instance', owner: 'r@example.com', scopes: [] });
    const opened = await env.warrant.connect.openLink(s.authorize_url);
    const state = new URL(opened.location).searchParams.get('state')!;
    const ok = await env.warrant.connect.handleCallback(new URLSearchParams({ code: 'c', state }), opened.cookieHeader);
    assert.deepEqual(JSON.parse(ok.connection!.params), { instance_url: 'https://acme.my.salesforce.com' });
  });
});
