import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import * as oauth from 'oauth4webapi';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitationCompleteNotificationSchema, UrlElicitationRequiredError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { startSandbox, sandboxDefaults, type Sandbox } from '../../src/sandbox/index.ts';
import { startLifecycle, eventually, sleep, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { authorizationUrl, authorizeAsOwner, discover, insecure, registerPublicClient } from '../authz/helpers.ts';
import { startUpstream } from './upstream.ts';

// The MCP gateway end to end: an upstream MCP server built with the SDK, protected by the sandbox
// IdP (5-second rotating tokens, checked by introspection), registered in Warrant; the owner
// connects it; an MCP client holding only Warrant's token calls tools on /mcp/{server} for ~20 s.

const OWNER = 'alice@example.com';
const REDIRECT = 'http://127.0.0.1:53682/callback';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe('the MCP gateway at /mcp/{server}, in front of an SDK MCP server behind the sandbox', () => {
  let sandbox: Sandbox;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let env: LifecycleEnv;
  let base: string;
  let as: oauth.AuthorizationServer;
  let accessToken: string;
  let agentId: string;
  let connectionId: string;
  const clients: Client[] = [];

  async function warrantToken(resource: string): Promise<{ access_token: string; agent_id: string }> {
    const client = await registerPublicClient(as, REDIRECT);
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource, verifier, state, scope: 'mcp' });
    const { callback } = await authorizeAsOwner(base, url, OWNER);
    const params = oauth.validateAuthResponse(as, client, callback, state);
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, insecure));
    const claims = JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString()) as { agent_id: string };
    return { access_token: tokens.access_token, agent_id: claims.agent_id };
  }

  /** Where Warrant's authorization endpoint sends the browser back for `resource`. */
  async function authorizeFor(resource: string): Promise<URL> {
    const client = await registerPublicClient(as, REDIRECT);
    const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource, verifier: oauth.generateRandomCodeVerifier(), state: 's', scope: 'mcp' });
    const res = await fetch(url, { redirect: 'manual' });
    await res.body?.cancel();
    return new URL(res.headers.get('location')!);
  }

  async function mcpClient(token: string): Promise<Client> {
    const client = new Client({ name: 'gateway-test', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp/up`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    clients.push(client);
    return client;
  }

  before(async () => {
    let sb: Sandbox | undefined;
    upstream = await startUpstream(() => sb!);
    sandbox = sb = await startSandbox({ accessTokenTtl: 5, rotateRefreshTokens: true, resources: [upstream.url], logger: process.env.GW_DEBUG ? (l) => console.log(l) : undefined });
    env = await startLifecycle({ sharedSandbox: sandbox, env: { WARRANT_MCP_ALLOWED_NETWORKS: '127.0.0.0/8' } });
    base = `http://127.0.0.1:${(env.warrant.app.server.address() as AddressInfo).port}`;
    as = await discover(base, base);
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await env?.cleanup();
    await sandbox?.close();
    await upstream?.close();
  });

  test('registration discovers the server (RFC 9728, RFC 8414) and makes it a provider', async () => {
    const refused = await env.warrant.app.inject({ method: 'POST', url: '/v1/mcp-servers', headers: admin, payload: { url: 'ftp://x.example/mcp', name: 'bad' } });
    assert.equal(refused.statusCode, 400);
    assert.equal(refused.json().field, 'url');
    const res = await env.warrant.app.inject({
      method: 'POST',
      url: '/v1/mcp-servers',
      headers: admin,
      payload: { url: upstream.url, name: 'up', client_id: sandboxDefaults.clientId, client_secret: sandboxDefaults.clientSecret },
    });
    assert.equal(res.statusCode, 201, res.body);
    const view = res.json();
    assert.equal(view.provider, 'mcp-up');
    assert.equal(view.resource, upstream.url);
    assert.equal(view.issuer, sandbox.issuer);
    assert.equal(view.client_source, 'pre_registered');
    assert.ok(!res.body.includes(sandboxDefaults.clientSecret), 'the client secret never comes back');
    const provider = env.warrant.catalog.get('mcp-up')!;
    assert.equal(provider.resource, upstream.url);
    assert.equal(provider.refresh_token_rotation, true);
    const list = await env.warrant.app.inject({ method: 'GET', url: '/v1/mcp-servers', headers: admin });
    assert.deepEqual(list.json().servers.map((s: { name: string }) => s.name), ['up']);
    const meta = await (await fetch(`${base}/.well-known/oauth-protected-resource/mcp/up`)).json();
    assert.equal(meta.resource, `${base}/mcp/up`);
    assert.deepEqual(meta.authorization_servers, [base]);

    // The owner's consent is an ordinary connect session; the upstream grant is a connection.
    connectionId = await env.connectTo('mcp-up', OWNER, ['items:read']);
    ({ access_token: accessToken, agent_id: agentId } = await warrantToken(`${base}/mcp/up`));
  });

  test('401 with WWW-Authenticate without a token and with a token for another audience', async () => {
    const call = (token?: string) =>
      fetch(`${base}/mcp/up`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
    const none = await call();
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp/up", scope="mcp"`);
    // No token is issued for an MCP endpoint nothing serves; one for another registered server is the wrong audience here.
    const unknown = await authorizeFor(`${base}/mcp/nothing-here`);
    assert.equal(unknown.searchParams.get('error'), 'invalid_target');
    const second = await env.warrant.app.inject({
      method: 'POST',
      url: '/v1/mcp-servers',
      headers: admin,
      payload: { url: upstream.url, name: 'other', client_id: sandboxDefaults.clientId, client_secret: sandboxDefaults.clientSecret },
    });
    assert.equal(second.statusCode, 201, second.body);
    const other = await warrantToken(`${base}/mcp/other`);
    const wrong = await call(other.access_token);
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get('www-authenticate')!, /resource_metadata="[^"]+\/mcp\/up", scope="mcp", error="invalid_token"/);
    assert.equal(((await wrong.json()) as { code: string }).code, 'agent_unauthenticated');
    const ok = await call(accessToken);
    assert.equal(ok.status, 200);
  });

  test('refused tokens and foreign session ids at /mcp/{server} are audited once each, with the reason, never the token', async () => {
    // Regression: the gateway refused wrong-audience tokens and other agents' session ids without an audit entry.
    const other = await warrantToken(`${base}/mcp/other`);
    const post = (token: string, headers: Record<string, string> = {}) =>
      fetch(`${base}/mcp/up`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}`, ...headers },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
    const wrong = await post(other.access_token);
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    const garbage = await post('not.a.token');
    assert.equal(garbage.status, 401);
    await garbage.body?.cancel();
    // A session of this agent on /mcp/up, presented by another agent (its own token for /mcp/up).
    const owned = await mcpClient(accessToken);
    const sid = (owned.transport as StreamableHTTPClientTransport).sessionId!;
    const intruder = await warrantToken(`${base}/mcp/up`);
    const hijack = await post(intruder.access_token, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' });
    assert.equal(hijack.status, 404);
    await hijack.body?.cancel();

    const idOf = (r: Response) => r.headers.get('warrant-request-id');
    const refused = await eventually(async () => {
      const all = await env.warrant.audit.query({ type: 'mcp.token_refused', limit: 1000 });
      return all.some((e) => (e.data as Record<string, unknown>).request_id === idOf(garbage)) ? all : undefined;
    });
    const entryOf = (r: Response) => refused.filter((e) => (e.data as Record<string, unknown>).request_id === idOf(r));
    assert.equal(entryOf(wrong).length, 1);
    assert.equal(entryOf(wrong)[0]!.actor, `agent:${other.agent_id}`);
    assert.deepEqual({ ...(entryOf(wrong)[0]!.data as Record<string, unknown>), request_id: undefined }, { endpoint: '/mcp/up', status: 401, reason: 'wrong_audience', request_id: undefined });
    assert.equal(entryOf(garbage).length, 1);
    assert.equal(entryOf(garbage)[0]!.actor, 'anonymous');
    assert.equal((entryOf(garbage)[0]!.data as Record<string, unknown>).reason, 'not_issued_here');
    const sessions = await eventually(async () => {
      const all = await env.warrant.audit.query({ type: 'mcp.session_refused', limit: 100 });
      // The 404 is JSON-RPC's own answer (no request id header, as for an unknown id): found by its actor.
      return all.find((e) => e.actor === `agent:${intruder.agent_id}`);
    });
    assert.equal(sessions.actor, `agent:${intruder.agent_id}`);
    assert.equal((sessions.data as Record<string, unknown>).reason, 'other_agent');
    assert.equal((sessions.data as Record<string, unknown>).endpoint, '/mcp/up');
    const text = JSON.stringify([...refused, sessions]);
    assert.ok(!text.includes(other.access_token.slice(-20)) && !text.includes(intruder.access_token.slice(-20)) && !text.includes(sid), 'no token or session id in the audit log');
  });

  test('tool calls for ~20 s across upstream token expiries: no failure, about one refresh per expiry, no token crosses', async () => {
    const client = await mcpClient(accessToken);
    const tools = await client.listTools();
    assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['add', 'echo']);
    sandbox.resetStats();
    const started = Date.now();
    let calls = 0;
    while (Date.now() - started < 20_000) {
      const r = (await client.callTool({ name: 'echo', arguments: { text: `n${calls}` } })) as CallToolResult;
      assert.notEqual(r.isError, true, JSON.stringify(r));
      assert.deepEqual(r.content, [{ type: 'text', text: `echo: n${calls}` }]);
      calls++;
      await sleep(200);
    }
    const stats = sandbox.stats();
    assert.equal(stats.refreshFailures, 0);
    assert.equal(stats.reuseDetected, 0);
    // 20 s of 5 s tokens: four or five expiries, refreshed once each (ahead of expiry, on demand).
    assert.ok(stats.refreshRequests >= 3 && stats.refreshRequests <= 8, `refreshes: ${stats.refreshRequests} for ${calls} calls`);
    assert.ok(!upstream.seenTokens.has(accessToken), "the client's token never goes upstream");
  });

  test('a tool not on the agent’s allow-list is refused, and hidden from tools/list; every call audited', async () => {
    const put = await env.warrant.app.inject({ method: 'PUT', url: `/v1/mcp-servers/up/agents/${agentId}/tools`, headers: admin, payload: { tools: ['echo'] } });
    assert.equal(put.statusCode, 200, put.body);
    const client = await mcpClient(accessToken);
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name), ['echo']);
    const r = (await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })) as CallToolResult;
    assert.equal(r.isError, true);
    assert.equal(JSON.parse((r.content[0] as { text: string }).text).code, 'policy_denied');
    await env.warrant.app.inject({ method: 'PUT', url: `/v1/mcp-servers/up/agents/${agentId}/tools`, headers: admin, payload: { tools: null } });
    await env.warrant.auditQueue.flush?.();
    await sleep(300);
    const entries = await env.warrant.audit.query({ type: 'mcp.tool_call', limit: 1000 });
    const refusedEntry = entries.find((e) => (e.data as Record<string, unknown>).tool === 'add');
    assert.ok(refusedEntry, 'the refused call is audited');
    const d = refusedEntry.data as Record<string, unknown>;
    assert.equal(d.outcome, 'error');
    assert.equal(d.code, 'policy_denied');
    assert.equal(d.reason, 'allow_list');
    assert.match(String(d.arguments_hash), /^hmac-sha256:/);
    assert.equal(refusedEntry.actor, `agent:${agentId}`);
    const okEntry = entries.find((e) => (e.data as Record<string, unknown>).tool === 'echo');
    assert.equal((okEntry!.data as Record<string, unknown>).outcome, 'ok');
    assert.equal(okEntry!.subject, `connection:${connectionId}`);
  });

  test('a revoked upstream grant becomes a tool result with the re-connect link, not a 401 loop', async () => {
    const token = await env.warrant.tokens.getFreshToken(connectionId);
    await sandbox.revokeGrantOf(token.accessToken);
    const client = await mcpClient(accessToken);
    const r = (await client.callTool({ name: 'echo', arguments: { text: 'x' } })) as CallToolResult;
    assert.equal(r.isError, true, JSON.stringify(r));
    const text = (r.content[0] as { text: string }).text;
    assert.match(text, /re-connect/);
    const problem = JSON.parse((r.content[1] as { text: string }).text) as Record<string, unknown>;
    assert.equal(problem.code, 'reauth_required');
    assert.ok(String(problem.reconnect_url).startsWith(env.warrant.config.publicUrl.replace(/:0$/, '')) || String(problem.reconnect_url).includes('/connect'), String(problem.reconnect_url));
    const before = sandbox.stats().refreshRequests;
    const again = (await client.callTool({ name: 'echo', arguments: { text: 'y' } })) as CallToolResult;
    assert.equal(again.isError, true);
    assert.equal(sandbox.stats().refreshRequests, before, 'no further IdP calls for a dead grant');
  });

  test('a client that declared URL-mode elicitation gets the link as -32042; the re-connect completes it and the call works', async () => {
    // The grant is still dead (previous test). MCP 2025-11-25: `elicitation: { url: {} }` in the client's capabilities.
    const client = new Client({ name: 'gateway-elicit', version: '1' }, { capabilities: { elicitation: { url: {} } } });
    const completed: string[] = [];
    client.setNotificationHandler(ElicitationCompleteNotificationSchema, (n) => void completed.push(n.params.elicitationId));
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp/up`), { requestInit: { headers: { authorization: `Bearer ${accessToken}` } } }));
    clients.push(client);
    const before = sandbox.stats().refreshRequests;
    const err = await client.callTool({ name: 'echo', arguments: { text: 'e' } }).then(
      (r) => assert.fail(`a tool result instead of the elicitation: ${JSON.stringify(r)}`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof UrlElicitationRequiredError, String(err));
    assert.equal(err.code, -32042);
    assert.equal(err.elicitations.length, 1);
    const [elicitation] = err.elicitations;
    assert.equal(elicitation!.mode, 'url');
    assert.match(elicitation!.url, /\/connect\/cs_[\w-]+\?t=[\w-]+$/);
    assert.match(elicitation!.message, /re|connect/i);
    assert.ok(elicitation!.elicitationId);
    assert.equal(sandbox.stats().refreshRequests, before, 'no IdP call for a dead grant');
    const audited = await eventually(async () => {
      await env.warrant.auditQueue.flush?.();
      const all = await env.warrant.audit.query({ type: 'mcp.tool_call', limit: 1000 });
      return all.find((e) => (e.data as Record<string, unknown>).elicitation === 'url');
    });
    assert.equal((audited.data as Record<string, unknown>).code, 'reauth_required');
    assert.ok(!JSON.stringify(audited).includes(new URL(elicitation!.url).searchParams.get('t')!), 'the link is not in the audit log');

    // The owner opens the link in one browser and consents again at the IdP.
    const link = new URL(elicitation!.url);
    const start = await env.warrant.app.inject({ url: link.pathname + link.search });
    assert.equal(start.statusCode, 302, start.body);
    const cookie = String([start.headers['set-cookie']].flat()[0]).split(';')[0]!;
    const back = new URL(await sandbox.authorize(Object.fromEntries(new URL(start.headers.location as string).searchParams) as never));
    const cb = await env.warrant.app.inject({ url: `${back.pathname}${back.search}`, headers: { cookie } });
    assert.equal(cb.statusCode, 200, cb.body);
    assert.equal((await env.warrant.connections.get(connectionId)).status, 'active');

    await eventually(() => completed.includes(elicitation!.elicitationId), 5_000);
    const r = (await client.callTool({ name: 'echo', arguments: { text: 'back' } })) as CallToolResult;
    assert.notEqual(r.isError, true, JSON.stringify(r));
    assert.deepEqual(r.content, [{ type: 'text', text: 'echo: back' }]);
  });
});
