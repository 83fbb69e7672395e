import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { authorizationUrl, authorizeAsOwner, discover, insecure, registerPublicClient } from '../authz/helpers.ts';
import { playOwner, startGatewayWarrant, startMockServer, type MockOptions, type MockServer } from './mock-auth.ts';

// How the gateway finds and uses a remote MCP server's auth, as the MCP conformance suite's
// authorization scenarios check it (test/conformance/RESULTS.md), each against a mock server and
// authorization server recording what Warrant asked: discovery (401 pointer, path-based and root
// RFC 9728 documents, path issuers, the 2025-03-26 fallbacks), scope selection, token endpoint
// authentication, Client ID Metadata Documents, and step-up on 403 insufficient_scope.

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const OWNER = 'owner@example.com';
const REDIRECT = 'http://127.0.0.1:53682/callback';
const METADATA_URL = 'https://warrant.example.com/oauth/client-metadata.json';

describe('the gateway against remote MCP servers of every shape', () => {
  let gw: Awaited<ReturnType<typeof startGatewayWarrant>>;
  const mocks: MockServer[] = [];
  const clients: Client[] = [];
  let seq = 0;

  before(async () => {
    gw = await startGatewayWarrant({ WARRANT_CLIENT_METADATA_URL: METADATA_URL });
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await gw?.cleanup();
    for (const m of mocks) await m.close();
  });

  async function mock(o: MockOptions): Promise<MockServer> {
    const m = await startMockServer(o);
    mocks.push(m);
    return m;
  }

  async function register(m: MockServer, extra: Record<string, string> = {}) {
    const name = `s${++seq}`;
    const res = await gw.warrant.app.inject({ method: 'POST', url: '/v1/mcp-servers', headers: admin, payload: { url: m.url, name, ...extra } });
    return { name, res };
  }

  /** The owner consents through a connect session; returns the authorization request the upstream saw. */
  async function connect(m: MockServer, name: string): Promise<URLSearchParams> {
    const before = m.requests.filter((r) => r.path.endsWith('/authorize')).length;
    const s = await gw.warrant.app.inject({ method: 'POST', url: '/v1/connect-sessions', headers: admin, payload: { provider: `mcp-${name}`, owner: OWNER, scopes: [] } });
    assert.equal(s.statusCode, 201, s.body);
    await playOwner(s.json().authorize_url);
    assert.equal((await gw.warrant.connect.getSession(s.json().id)).status, 'completed');
    const authorizes = m.requests.filter((r) => r.path.endsWith('/authorize'));
    assert.equal(authorizes.length, before + 1);
    return authorizes.at(-1)!.query;
  }

  async function agent(name: string): Promise<Client> {
    const as = await discover(gw.base, gw.base);
    const client = await registerPublicClient(as, REDIRECT);
    const verifier = oauth.generateRandomCodeVerifier();
    const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource: `${gw.base}/mcp/${name}`, verifier, state: 's', scope: 'mcp' });
    const { callback } = await authorizeAsOwner(gw.base, url, OWNER);
    const params = oauth.validateAuthResponse(as, client, callback, 's');
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, insecure));
    const mcp = new Client({ name: 'discovery-test', version: '1' });
    await mcp.connect(new StreamableHTTPClientTransport(new URL(`${gw.base}/mcp/${name}`), { requestInit: { headers: { authorization: `Bearer ${tokens.access_token}` } } }));
    clients.push(mcp);
    return mcp;
  }

  test('scope selection: the 401 challenge’s scope first, then PRM scopes_supported, else no scope at all', async () => {
    const challenged = await mock({ challengeScope: 'mcp:basic', scopesSupported: ['mcp:basic', 'mcp:read'] });
    const a = await register(challenged);
    assert.equal(a.res.statusCode, 201, a.res.body);
    assert.deepEqual(a.res.json().scopes, ['mcp:basic']);
    assert.equal((await connect(challenged, a.name)).get('scope'), 'mcp:basic');

    const supported = await mock({ scopesSupported: ['mcp:basic', 'mcp:read', 'mcp:write'] });
    const b = await register(supported);
    assert.equal((await connect(supported, b.name)).get('scope'), 'mcp:basic mcp:read mcp:write');

    const none = await mock({});
    const c = await register(none);
    const q = await connect(none, c.name);
    assert.equal(q.has('scope'), false, 'no scope parameter when nothing names one');
    // RFC 8707: the resource is the server's, on the authorization and the token request alike.
    assert.equal(q.get('resource'), none.url);
    assert.equal(new URLSearchParams(none.at('/token').at(-1)!.body).get('resource'), none.url);
  });

  test('offline_access is asked only where the authorization server lists it (SEP-2207)', async () => {
    const listed = await mock({ scopesSupported: ['mcp:basic'], asScopes: ['mcp:basic', 'offline_access'] });
    const a = await register(listed);
    assert.equal((await connect(listed, a.name)).get('scope'), 'mcp:basic offline_access');
    const unlisted = await mock({ scopesSupported: ['mcp:basic'], asScopes: ['mcp:basic'] });
    const b = await register(unlisted);
    assert.equal((await connect(unlisted, b.name)).get('scope'), 'mcp:basic');
  });

  test('RFC 9728 discovery: the 401 pointer, the root document naming the origin, a path issuer', async () => {
    const pointer = await mock({ prm: 'pointer', asPath: '/tenant1' });
    const a = await register(pointer);
    assert.equal(a.res.statusCode, 201, a.res.body);
    assert.equal(a.res.json().issuer, `${pointer.origin}/tenant1`);
    // MCP 2025-11-25 order for a path issuer: RFC 8414 and OIDC path insertion, then OIDC appended.
    const asked = pointer.requests.filter((r) => r.path.includes('.well-known') && r.path !== '/meta/prm.json').map((r) => r.path);
    assert.deepEqual(asked, ['/.well-known/oauth-authorization-server/tenant1', '/.well-known/openid-configuration/tenant1', '/tenant1/.well-known/openid-configuration']);

    const root = await mock({ prm: 'root' });
    const b = await register(root);
    assert.equal(b.res.statusCode, 201, b.res.body);
    assert.equal(b.res.json().resource, root.origin, 'the root document is for the origin');
    assert.deepEqual(root.requests.filter((r) => r.path.startsWith('/.well-known/oauth-protected-resource')).map((r) => r.path), ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']);
    assert.equal((await connect(root, b.name)).get('resource'), root.origin);
  });

  test('a document naming another resource is refused before any registration or authorization', async () => {
    const evil = await mock({ prmResource: 'https://evil.example.com/mcp' });
    const { res } = await register(evil);
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().field, 'url');
    assert.match(res.json().detail, /names another resource/);
    assert.equal(evil.requests.filter((r) => r.path.endsWith('/register') || r.path.endsWith('/authorize')).length, 0);
    // Nor is the root document consulted once the path-based one answered.
    assert.equal(evil.at('/.well-known/oauth-protected-resource').length, 0);
  });

  test('2025-03-26 servers: AS metadata at the origin, else the default endpoints /authorize, /token, /register', async () => {
    const meta = await mock({ prm: 'none', legacy: 'metadata' });
    const a = await register(meta);
    assert.equal(a.res.statusCode, 201, a.res.body);
    assert.equal(a.res.json().issuer, `${meta.origin}/oauth`);
    const q = await connect(meta, a.name);
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.equal(q.has('resource'), false, 'no resource indicator for a server that predates RFC 9728 in MCP');
    assert.equal(meta.at('/oauth/register').length, 1);

    const bare = await mock({ prm: 'none', legacy: 'fallback' });
    const b = await register(bare);
    assert.equal(b.res.statusCode, 201, b.res.body);
    await connect(bare, b.name);
    assert.equal(bare.at('/register').length, 1);
    assert.equal(bare.at('/token').length, 1);
    const mcp = await agent(b.name);
    const r = (await mcp.callTool({ name: 'hello', arguments: {} })) as CallToolResult;
    assert.notEqual(r.isError, true, JSON.stringify(r));
  });

  test('token endpoint authentication follows token_endpoint_auth_methods_supported, and Basic keeps unreserved characters', async () => {
    for (const method of ['client_secret_basic', 'client_secret_post', 'none'] as const) {
      const m = await mock({ authMethods: [method] });
      const { name, res } = await register(m);
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(JSON.parse(m.at('/register')[0]!.body).token_endpoint_auth_method, method, 'registered as the server supports');
      await connect(m, name);
      const sent = m.at('/token').at(-1)!;
      const form = new URLSearchParams(sent.body);
      assert.equal(!!sent.headers.authorization, method === 'client_secret_basic', method);
      assert.equal(form.has('client_secret'), method === 'client_secret_post', method);
      if (method === 'none') assert.equal(form.get('client_id'), 'registered-client');
    }
    // A pre-registered client where only client_secret_post is supported; and a Basic header in the
    // clear for an id of unreserved characters (servers that compare it raw), `:` still encoded.
    const post = await mock({ authMethods: ['client_secret_post'] });
    const p = await register(post, { client_id: 'pre-registered-client', client_secret: 'pre-registered-secret' });
    await connect(post, p.name);
    assert.equal(new URLSearchParams(post.at('/token').at(-1)!.body).get('client_secret'), 'pre-registered-secret');
    const basic = await mock({ authMethods: ['client_secret_basic'] });
    const b = await register(basic, { client_id: 'pre-registered-client', client_secret: 'se:cret' });
    await connect(basic, b.name);
    assert.equal(basic.at('/token').at(-1)!.headers.authorization, `Basic ${Buffer.from('pre-registered-client:se%3Acret').toString('base64')}`);
  });

  test('CIMD: an AS taking client ID metadata documents gets Warrant’s URL as client_id, no registration; the document is served', async () => {
    const m = await mock({ cimd: true, authMethods: ['none'] });
    const { name, res } = await register(m);
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().client_source, 'client_metadata_document');
    assert.equal(res.json().client_id, METADATA_URL);
    assert.equal(m.at('/register').length, 0);
    const q = await connect(m, name);
    assert.equal(q.get('client_id'), METADATA_URL);
    assert.equal(new URLSearchParams(m.at('/token').at(-1)!.body).get('client_id'), METADATA_URL);

    const doc = await fetch(`${gw.base}/oauth/client-metadata.json`);
    assert.equal(doc.status, 200);
    const body = (await doc.json()) as Record<string, unknown>;
    assert.equal(body.client_id, METADATA_URL);
    assert.equal(body.token_endpoint_auth_method, 'none');
    assert.deepEqual(body.redirect_uris, [`${gw.base}/oauth/callback`]);
    assert.ok((body.grant_types as string[]).includes('refresh_token'));
    assert.ok(!('client_secret' in body));
  });

  test('CIMD is not used over plain http: Warrant registers instead', async () => {
    const plain = await startGatewayWarrant();
    try {
      const m = await mock({ cimd: true, authMethods: ['none'] });
      const res = await plain.warrant.app.inject({ method: 'POST', url: '/v1/mcp-servers', headers: admin, payload: { url: m.url, name: 'plain' } });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.json().client_source, 'dynamic_registration');
      assert.equal(m.at('/register').length, 1);
    } finally {
      await plain.cleanup();
    }
  });

  test('step-up on upstream 403 insufficient_scope: a link for the accumulated scopes, once; then no loop', async () => {
    const m = await mock({ challengeScope: 'mcp:basic', callScopes: ['mcp:basic', 'mcp:write'] });
    const { name } = await register(m);
    assert.equal((await connect(m, name)).get('scope'), 'mcp:basic');
    const mcp = await agent(name);
    assert.deepEqual((await mcp.listTools()).tools.map((t) => t.name), ['hello']);
    const refused = (await mcp.callTool({ name: 'hello', arguments: {} })) as CallToolResult;
    assert.equal(refused.isError, true);
    const problem = JSON.parse((refused.content.at(-1) as { text: string }).text) as Record<string, unknown>;
    assert.equal(problem.code, 'scope_insufficient');
    assert.deepEqual(problem.required_scope, ['mcp:basic', 'mcp:write'], 'what it held plus what the server named');
    assert.match(String(problem.connect_url), /\/connect\//);
    await playOwner(String(problem.connect_url));
    assert.equal(m.requests.filter((r) => r.path === '/authorize').at(-1)!.query.get('scope'), 'mcp:basic mcp:write');
    const ok = (await mcp.callTool({ name: 'hello', arguments: {} })) as CallToolResult;
    assert.notEqual(ok.isError, true, JSON.stringify(ok));

    // A server that refuses a scope the connection already holds: no link (another consent cannot
    // help), so no authorization loop, however often the agent retries.
    const stubborn = await mock({ challengeScope: 'mcp:admin', callScopes: ['mcp:admin'], refuseCalls: true });
    const st = await register(stubborn);
    await connect(stubborn, st.name);
    const client = await agent(st.name);
    for (let i = 0; i < 3; i++) {
      const r = (await client.callTool({ name: 'hello', arguments: {} })) as CallToolResult;
      assert.equal(r.isError, true);
      const p2 = JSON.parse((r.content.at(-1) as { text: string }).text) as Record<string, unknown>;
      assert.equal(p2.code, 'scope_insufficient');
      assert.equal(p2.connect_url, undefined);
      assert.match(String(p2.detail), /holds every scope it names/);
    }
    assert.equal(stubborn.requests.filter((r) => r.path === '/authorize').length, 1, 'one authorization in all');
  });
});
