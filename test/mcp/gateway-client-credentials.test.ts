import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { exportPKCS8, generateKeyPair } from 'jose';
import * as oauth from 'oauth4webapi';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { Warrant } from '../../src/warrant.ts';
import { ADMIN_TOKEN, captureLogger } from '../helpers/app.ts';
import { authorizationUrl, authorizeAsOwner, discover, insecure, registerPublicClient } from '../authz/helpers.ts';
import { playOwner, startGatewayWarrant, startMockServer, type MockServer } from './mock-auth.ts';

// The gateway as a client-credentials client upstream (SEP-1046): an admin registers a remote MCP
// server with a pre-registered client (a secret, or a private key for private_key_jwt) and names the
// owner; Warrant asks for the first token right then (refusing the registration when that fails),
// keeps the grant under the token lifecycle (asked for again ahead of expiry) and ends it with one
// alert when the server refuses the credentials. Tool calls on /mcp/{name} go through it.

const OWNER = 'ops@example.com';
const REDIRECT = 'http://127.0.0.1:53682/callback';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const SECRET = 'machine-secret-5f1e9c0d7a';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('MCP servers registered for client credentials (SEP-1046)', () => {
  let warrant: Warrant;
  let base: string;
  let cleanup: () => Promise<void>;
  const logs = captureLogger('debug');
  const mocks: MockServer[] = [];
  const clients: Client[] = [];

  before(async () => {
    ({ warrant, base, cleanup } = await startGatewayWarrant({}, logs.logger));
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await cleanup?.();
    for (const m of mocks) await m.close();
  });

  const register = (payload: Record<string, unknown>) => warrant.app.inject({ method: 'POST', url: '/v1/mcp-servers', headers: admin, payload });
  const tokenRequests = (m: MockServer) => m.at('/token').filter((r) => new URLSearchParams(r.body).get('grant_type') === 'client_credentials');

  /** An MCP client of the owner's agent on /mcp/{name}, holding only Warrant's token. */
  async function ownersClient(name: string): Promise<Client> {
    const as = await discover(base, base);
    const client = await registerPublicClient(as, REDIRECT);
    const verifier = oauth.generateRandomCodeVerifier();
    const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource: `${base}/mcp/${name}`, verifier, state: 's', scope: 'mcp' });
    const { callback } = await authorizeAsOwner(base, url, OWNER);
    const params = oauth.validateAuthResponse(as, client, callback, 's');
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, insecure));
    const mcp = new Client({ name: 'cc-test', version: '1' });
    await mcp.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp/${name}`), { requestInit: { headers: { authorization: `Bearer ${tokens.access_token}` } } }));
    clients.push(mcp);
    return mcp;
  }

  test('every field of a client-credentials registration is checked, each mistake naming its field', async () => {
    const url = 'http://127.0.0.1:9/mcp';
    // Fields the route's schema refuses are named with their place (`body.…`), as everywhere in the API.
    const cases: [Record<string, unknown>, string][] = [
      [{ url, name: 'x', grant_type: 'password', client_id: 'c', client_secret: 's', owner: OWNER }, 'body.grant_type'],
      [{ url, name: 'x', grant_type: 'client_credentials', client_secret: 's', owner: OWNER }, 'client_id'],
      [{ url, name: 'x', grant_type: 'client_credentials', client_id: 'c', owner: OWNER }, 'client_secret'],
      [{ url, name: 'x', grant_type: 'client_credentials', client_id: 'c', client_secret: 's' }, 'owner'],
      [{ url, name: 'x', grant_type: 'client_credentials', client_id: 'c', client_secret: 's', private_key: 'k', owner: OWNER }, 'private_key'],
      [{ url, name: 'x', client_id: 'c', client_secret: 's', owner: OWNER }, 'owner'],
      [{ url, name: 'x', grant_type: 'client_credentials', client_id: 'c', private_key: 'not-a-key-3b9f', owner: OWNER }, 'private_key'],
      [{ url, name: 'x', grant_type: 'client_credentials', client_id: 'c', private_key: '-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n', owner: OWNER }, 'private_key'],
      [{ url, name: 'x', grant_type: 'client_credentials', client_id: 'c', client_secret: 's', owner: '' }, 'body.owner'],
    ];
    for (const [payload, field] of cases) {
      const res = await register(payload);
      assert.equal(res.statusCode, 400, `${JSON.stringify(payload)} → ${res.body}`);
      assert.equal(res.json().code, 'invalid_request');
      assert.equal(res.json().field, field, res.body);
      assert.ok(!res.body.includes('not-a-key-3b9f'), 'a rejected key is never echoed');
    }
  });

  test('client_secret_basic: a bad secret refuses the registration; a good one makes the owner\'s connection, re-requested ahead of expiry', async () => {
    const mock = await startMockServer({
      authMethods: ['client_secret_basic'],
      grantTypes: ['client_credentials'],
      machineOnly: true,
      scopesSupported: ['tools:read'],
      machineClient: { clientId: 'machine-1', secret: SECRET },
      tokenTtl: 10,
    });
    mocks.push(mock);

    // A secret the server refuses: 400 naming the field, not stored, never echoed or logged.
    const wrong = 'wrong-secret-8c2d41e7';
    const refused = await register({ url: mock.url, name: 'cc-basic', grant_type: 'client_credentials', client_id: 'machine-1', client_secret: wrong, owner: OWNER });
    assert.equal(refused.statusCode, 400, refused.body);
    assert.equal(refused.json().field, 'client_secret');
    assert.match(refused.json().detail, /invalid_client.*nothing was registered/);
    assert.ok(!refused.body.includes(wrong));
    assert.equal((await warrant.app.inject({ method: 'GET', url: '/v1/mcp-servers/cc-basic', headers: admin })).statusCode, 404);
    assert.equal(warrant.catalog.has('mcp-cc-basic'), false);
    assert.deepEqual(await warrant.store.connections.list({ provider: 'mcp-cc-basic' }), []);

    const res = await register({ url: mock.url, name: 'cc-basic', grant_type: 'client_credentials', client_id: 'machine-1', client_secret: SECRET, owner: OWNER });
    const registeredAt = Date.now();
    assert.equal(res.statusCode, 201, res.body);
    const view = res.json();
    assert.equal(view.grant_type, 'client_credentials');
    assert.equal(view.token_endpoint_auth_method, 'client_secret_basic');
    assert.equal(view.owner, OWNER);
    assert.match(view.connection, /^con_/);
    assert.ok(!res.body.includes(SECRET), 'the secret never comes back');

    // The first token was asked for at registration: Basic auth, the scope and the resource (RFC 8707).
    const first = tokenRequests(mock).at(-1)!;
    const form = new URLSearchParams(first.body);
    assert.equal(form.get('scope'), 'tools:read');
    assert.equal(form.get('resource'), mock.url);
    assert.equal(form.get('client_secret'), null);
    assert.equal(first.headers.authorization, `Basic ${Buffer.from(`machine-1:${SECRET}`).toString('base64')}`);
    const conn = (await warrant.store.connections.get(view.connection))!;
    assert.equal(conn.owner, OWNER);
    assert.equal(conn.status, 'active');
    assert.deepEqual(JSON.parse(conn.requested_scopes), ['tools:read']);
    const provider = warrant.catalog.get('mcp-cc-basic')!;
    assert.equal(provider.auth, 'client_credentials');
    assert.equal(provider.client_refusal, 'terminal');

    // Tool calls through /mcp/cc-basic use the machine grant.
    const mcp = await ownersClient('cc-basic');
    assert.deepEqual((await mcp.listTools()).tools.map((t) => t.name), ['hello']);
    const ok = (await mcp.callTool({ name: 'hello', arguments: {} })) as CallToolResult;
    assert.equal(ok.isError, undefined, JSON.stringify(ok));
    assert.equal(tokenRequests(mock).length, 2, 'one refused attempt, then the registration token');

    // Past three quarters of the 10 s lifetime the token is asked for again, before the server could refuse it.
    await sleep(Math.max(0, registeredAt + 8_000 - Date.now()));
    const again = (await mcp.callTool({ name: 'hello', arguments: {} })) as CallToolResult;
    assert.equal(again.isError, undefined, JSON.stringify(again));
    assert.equal(tokenRequests(mock).length, 3);
    assert.equal(mock.expiredRefusals(), 0, 'no expired token ever reached the server');
    assert.equal(mock.at('/mcp').filter((r) => !r.headers.authorization?.startsWith('Bearer tok-')).length, 2, "only the two registrations' discovery probes went without a token");

    // Never in a response, the stored row, an audit entry or a log line.
    const entries = await warrant.audit.query({ type: 'mcp.server_registered' });
    const entry = entries.find((e) => e.subject === 'mcp_server:cc-basic')!;
    assert.equal((entry.data as Record<string, unknown>).grant_type, 'client_credentials');
    assert.equal((entry.data as Record<string, unknown>).owner, OWNER);
    const listed = await warrant.app.inject({ method: 'GET', url: '/v1/mcp-servers', headers: admin });
    for (const text of [listed.body, JSON.stringify(entries), JSON.stringify(await warrant.audit.query({})), logs.text()]) {
      assert.ok(!text.includes(SECRET) && !text.includes(wrong));
    }
    const row = await warrant.store.db.withTables<{ mcp_servers: { name: string; metadata: string } }>().selectFrom('mcp_servers').select('metadata').where('name', '=', 'cc-basic').executeTakeFirst();
    assert.ok(row && !row.metadata.includes(SECRET), 'the secret is in the vault, not the row');
  });

  test('a private key works for an authorization-code registration too: the code exchange carries the assertion', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const mock = await startMockServer({ authMethods: ['private_key_jwt'], signingAlgs: ['ES256', 'RS256'] });
    mocks.push(mock);
    const res = await register({ url: mock.url, name: 'code-jwt', client_id: 'code-client', private_key: await exportPKCS8(privateKey) });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().grant_type, 'authorization_code');
    assert.equal(res.json().token_endpoint_auth_method, 'private_key_jwt');
    assert.equal(res.json().owner, undefined);
    assert.equal(tokenRequests(mock).length, 0, 'no token before the owner consents');
    const session = await warrant.app.inject({ method: 'POST', url: '/v1/connect-sessions', headers: admin, payload: { provider: 'mcp-code-jwt', owner: OWNER, scopes: [] } });
    assert.equal(session.statusCode, 201, session.body);
    await playOwner(session.json().authorize_url as string);
    const exchange = new URLSearchParams(mock.at('/token').at(-1)!.body);
    assert.equal(exchange.get('grant_type'), 'authorization_code');
    assert.equal(exchange.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    const claims = JSON.parse(Buffer.from(exchange.get('client_assertion')!.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    assert.deepEqual([claims.iss, claims.sub, claims.aud], ['code-client', 'code-client', mock.origin]);
    assert.equal(exchange.get('client_secret'), null);
  });

  test('private_key_jwt: an ES256 assertion per request (aud the issuer, iss = sub = client_id, 60 s, jti); refused credentials end the grant with one alert', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const pem = await exportPKCS8(privateKey);
    const machineClient = { clientId: 'machine-jwt', publicKey };
    const mock = await startMockServer({
      authMethods: ['private_key_jwt'],
      signingAlgs: ['ES256'],
      grantTypes: ['client_credentials'],
      machineOnly: true,
      machineClient,
    });
    mocks.push(mock);

    // An RSA key where the server takes ES256 only: refused before any token request.
    const rsa = await exportPKCS8((await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 })).privateKey);
    const wrongAlg = await register({ url: mock.url, name: 'cc-jwt', grant_type: 'client_credentials', client_id: 'machine-jwt', private_key: rsa, owner: OWNER });
    assert.equal(wrongAlg.statusCode, 400, wrongAlg.body);
    assert.equal(wrongAlg.json().field, 'private_key');
    assert.match(wrongAlg.json().detail, /RS256.*ES256/);
    // A key the server does not know: its assertion is refused, and so is the registration.
    const other = await exportPKCS8((await generateKeyPair('ES256', { extractable: true })).privateKey);
    const unknown = await register({ url: mock.url, name: 'cc-jwt', grant_type: 'client_credentials', client_id: 'machine-jwt', private_key: other, owner: OWNER });
    assert.equal(unknown.statusCode, 400, unknown.body);
    assert.equal(unknown.json().field, 'private_key');
    assert.equal(tokenRequests(mock).length, 1);

    const res = await register({ url: mock.url, name: 'cc-jwt', grant_type: 'client_credentials', client_id: 'machine-jwt', private_key: pem, owner: OWNER });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().token_endpoint_auth_method, 'private_key_jwt');
    const body = pem.split('\n')[1]!;
    for (const text of [res.body, unknown.body, wrongAlg.body]) assert.ok(!text.includes(body), 'no part of a key comes back');

    const [seen] = mock.assertions;
    assert.equal(seen!.alg, 'ES256');
    assert.equal(seen!.claims.iss, 'machine-jwt');
    assert.equal(seen!.claims.sub, 'machine-jwt');
    assert.equal(seen!.claims.aud, mock.origin);
    assert.ok((seen!.claims.exp as number) - (seen!.claims.iat as number) <= 60);
    assert.equal(typeof seen!.claims.jti, 'string');

    const mcp = await ownersClient('cc-jwt');
    const ok = (await mcp.callTool({ name: 'hello', arguments: {} })) as CallToolResult;
    assert.equal(ok.isError, undefined, JSON.stringify(ok));
    // A new token (the lifecycle's path, forced now rather than waited for) carries a new assertion.
    const connection = res.json().connection as string;
    const refresh = () => warrant.app.inject({ method: 'POST', url: `/v1/connections/${connection}/refresh`, headers: admin });
    const refreshed = await refresh();
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    assert.equal(refreshed.json().refreshed, true);
    assert.equal(((await mcp.callTool({ name: 'hello', arguments: {} })) as CallToolResult).isError, undefined);
    assert.equal(mock.assertions.length, 2, 'a fresh assertion (new jti) for the second token');
    assert.notEqual(mock.assertions[0]!.claims.jti, mock.assertions[1]!.claims.jti);

    // The server stops accepting the key (revoked, rotated): the next token request ends the grant.
    machineClient.publicKey = (await generateKeyPair('ES256')).publicKey;
    const ended = await refresh();
    assert.equal(ended.json().code, 'reauth_required', ended.body);
    const dead = (await mcp.callTool({ name: 'hello', arguments: {} })) as CallToolResult;
    assert.equal(dead.isError, true);
    const text = dead.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
    assert.match(text, /refused Warrant's client credentials/);
    assert.match(text, /"code":"reauth_required"/);
    assert.doesNotMatch(text, /https?:\/\/[^ ]*\/connect\//, 'no consent link: a machine grant has none');
    assert.equal((await warrant.store.connections.get(connection))!.status, 'reauth_required');
    const requests = tokenRequests(mock).length;
    const again = (await mcp.callTool({ name: 'hello', arguments: {} })) as CallToolResult;
    assert.equal(again.isError, true);
    assert.equal(tokenRequests(mock).length, requests, 'no further token request for a dead grant');
    const alerts = (await warrant.audit.query({ type: 'connection.reauth_required' })).filter((e) => e.subject === `connection:${connection}`);
    assert.equal(alerts.length, 1, 'one alert');
    assert.equal((alerts[0]!.data as Record<string, unknown>).error, 'invalid_client');
    assert.ok(!logs.text().includes(body), 'no part of the key in a log line');
  });
});
