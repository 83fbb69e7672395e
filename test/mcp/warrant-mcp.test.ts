import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { startLifecycle, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe("Warrant's own MCP server at /mcp/warrant, with the official SDK client against the sandbox", () => {
  let env: LifecycleEnv;
  let base: string;
  let conn: string;
  let readerKey: string;
  let writerKey: string;
  const clients: Client[] = [];

  async function createAgent(grants: { connection: string; scopes: string[] }[], name: string) {
    const owner = (await env.warrant.store.connections.get(grants[0]!.connection))?.owner;
    const res = await env.warrant.app.inject({ method: 'POST', url: '/v1/agents', headers: admin, payload: { name, owner, grants } });
    assert.equal(res.statusCode, 201, res.body);
    return { key: res.json().api_key as string, id: res.json().id as string };
  }

  async function connectClient(key: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
    const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp/warrant`), { requestInit: { headers: { authorization: `Bearer ${key}` } } });
    const client = new Client({ name: 'warrant-test', version: '1' });
    await client.connect(transport);
    clients.push(client);
    return { client, transport };
  }

  const problemOf = (r: unknown) => {
    const result = r as CallToolResult;
    assert.equal(result.isError, true, `expected an error result: ${JSON.stringify(r)}`);
    return JSON.parse((result.content[0] as { text: string }).text) as Record<string, unknown>;
  };

  const post = (key: string | undefined, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}/mcp/warrant`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
      body: JSON.stringify(body),
    });

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 30 } });
    base = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
    conn = await env.connect();
    readerKey = (await createAgent([{ connection: conn, scopes: ['items:read'] }], 'reader')).key;
    writerKey = (await createAgent([{ connection: conn, scopes: ['items:read', 'items:write'] }], 'writer')).key;
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await env?.cleanup();
  });

  test('401 without a credential, with WWW-Authenticate naming the RFC 9728 metadata, which is served', async () => {
    const publicUrl = env.warrant.config.publicUrl;
    const none = await post(undefined, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.equal(none.status, 401);
    const challenge = none.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer /);
    assert.ok(challenge.includes(`resource_metadata="${publicUrl}/.well-known/oauth-protected-resource/mcp/warrant"`), challenge);
    assert.ok(!challenge.includes('error='), 'no error code when no credential was sent (RFC 6750 §3.1)');
    const wrong = await post(`${readerKey.slice(0, -4)}AAAA`, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    assert.equal((await wrong.json()).code, 'agent_unauthenticated');

    const meta = await fetch(`${base}/.well-known/oauth-protected-resource/mcp/warrant`);
    assert.equal(meta.status, 200);
    const doc = await meta.json();
    assert.equal(doc.resource, `${publicUrl}/mcp/warrant`);
    assert.deepEqual(doc.authorization_servers, [publicUrl]);
    assert.deepEqual(doc.bearer_methods_supported, ['header']);
    assert.ok(doc.scopes_supported.length >= 1);
  });

  test('session era: initialize gives an Mcp-Session-Id; tools are listed with their schemas; list_connections shows grants, never tokens', async () => {
    const { client, transport } = await connectClient(readerKey);
    assert.ok(transport.sessionId && transport.sessionId.length >= 40, 'a session id of 256 random bits');
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['call_api', 'connection_status', 'list_connections', 'provider_detail', 'request_access']);
    for (const t of tools) {
      assert.equal(t.inputSchema.type, 'object');
      assert.ok(t.description && t.description.length > 80, `${t.name} has a description a model can act on`);
      assert.ok(t.outputSchema, `${t.name} has a typed result`);
    }
    const r = await client.callTool({ name: 'list_connections', arguments: {} });
    assert.ok(!r.isError, JSON.stringify(r));
    const { connections } = r.structuredContent as { connections: { id: string; provider: string; status: string; scopes: string[]; expires_at: string | null }[] };
    assert.equal(connections.length, 1);
    assert.equal(connections[0]!.id, conn);
    assert.equal(connections[0]!.provider, 'sandbox');
    assert.equal(connections[0]!.status, 'active');
    assert.deepEqual(connections[0]!.scopes, ['items:read']);
    const secrets = await env.warrant.store.vault.getAll('connection', conn);
    for (const value of Object.values(secrets)) assert.ok(!JSON.stringify(r).includes(value), 'no token in a tool result');
  });

  test('stateless era: a request without a session id stands alone (2026-07-28 and 2025 headers), server/discover answers', async () => {
    const before = env.warrant.mcp.sessionCount();
    const call = await post(readerKey, {
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: 'list_connections', arguments: {}, _meta: { protocolVersion: '2026-07-28', clientInfo: { name: 'raw', version: '1' }, capabilities: {} } },
    }, { 'mcp-protocol-version': '2026-07-28' });
    assert.equal(call.status, 200);
    assert.equal(call.headers.get('mcp-session-id'), null, 'no session is made');
    const answer = await call.json();
    assert.equal(answer.id, 7);
    assert.equal(answer.result.structuredContent.connections[0].id, conn);
    const listed = await post(readerKey, { jsonrpc: '2.0', id: 8, method: 'tools/list' }, { 'mcp-protocol-version': '2025-06-18' });
    assert.equal((await listed.json()).result.tools.length, 5);
    const discover = await (await post(readerKey, { jsonrpc: '2.0', id: 9, method: 'server/discover', params: {} })).json();
    assert.ok(discover.result.supportedVersions.includes('2026-07-28'));
    assert.equal(discover.result.serverInfo.name, 'warrant');
    assert.equal(env.warrant.mcp.sessionCount(), before, 'stateless calls hold no session');
  });

  test('call_api: a proxied GET under the policy; policy_denied as a typed error result', async () => {
    const { client } = await connectClient(readerKey);
    const ok = await client.callTool({ name: 'call_api', arguments: { connection: conn, method: 'GET', path: '/whoami' } });
    assert.ok(!ok.isError, JSON.stringify(ok));
    const res = ok.structuredContent as { status: number; body: string; body_encoding: string; truncated: boolean; headers: Record<string, string> };
    assert.equal(res.status, 200);
    assert.equal(res.body_encoding, 'text');
    assert.equal(res.truncated, false);
    assert.equal(JSON.parse(res.body).client_id, 'warrant', 'the upstream saw the connection token');
    assert.match(res.headers['warrant-request-id'] ?? '', /^req_/);

    const denied = problemOf(await client.callTool({ name: 'call_api', arguments: { connection: conn, method: 'POST', path: '/items', body: { name: 'x' } } }));
    assert.equal(denied.code, 'policy_denied');
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.granted_scopes, ['items:read']);
    const bad = problemOf(await client.callTool({ name: 'call_api', arguments: { connection: conn, path: 'no-slash' } }));
    assert.equal(bad.code, 'invalid_request');
    assert.equal(bad.field, 'arguments.path');
    const extra = problemOf(await client.callTool({ name: 'call_api', arguments: { connection: conn, path: '/items', sneaky: 1 } }));
    assert.equal(extra.field, 'arguments.sneaky');
  });

  test('call_api: scope_insufficient names the required scope', async () => {
    // The IdP granted items:read only, but the grant was imported claiming items:write too.
    const thin = await env.connect('frank@example.com', ['items:read']);
    const secrets = await env.warrant.store.vault.getAll('connection', thin);
    const imported = await env.warrant.app.inject({
      method: 'POST',
      url: '/v1/connections',
      headers: admin,
      payload: { provider: 'sandbox', owner: 'frank@example.com', access_token: secrets.access_token, refresh_token: secrets.refresh_token, expires_in: 30, scopes: ['items:read', 'items:write'] },
    });
    const id = imported.json().id as string;
    const { key } = await createAgent([{ connection: id, scopes: ['items:write'] }], 'overreach');
    const { client } = await connectClient(key);
    const p = problemOf(await client.callTool({ name: 'call_api', arguments: { connection: id, method: 'POST', path: '/items', body: { name: 'x' } } }));
    assert.equal(p.code, 'scope_insufficient');
    assert.equal(p.status, 403);
    assert.equal(p.required_scope, 'items:write');
  });

  test('call_api: reauth_required after the grant is revoked at the IdP; connection_status says a re-connect is needed', async () => {
    const c = await env.connect('hank@example.com', ['items:read']);
    const { key } = await createAgent([{ connection: c, scopes: ['items:read'] }], 'hank');
    const { client } = await connectClient(key);
    const fine = (await client.callTool({ name: 'connection_status', arguments: { connection: c } })).structuredContent as Record<string, unknown>;
    assert.equal(fine.status, 'active');
    assert.equal(fine.needs_reconnect, false);
    assert.equal(fine.reauth_url, null);

    const t = await env.warrant.tokens.getFreshToken(c);
    await env.sandbox.revokeGrantOf(t.accessToken);
    const p = problemOf(await client.callTool({ name: 'call_api', arguments: { connection: c, path: '/items' } }));
    assert.equal(p.code, 'reauth_required');
    assert.equal(p.status, 424);
    // The connection in the admin API, not a re-connect link: agents never hold that capability.
    assert.equal(p.reauth_url, `${env.warrant.config.publicUrl}/v1/connections/${c}`);

    const status = (await client.callTool({ name: 'connection_status', arguments: { connection: c } })).structuredContent as Record<string, unknown>;
    assert.equal(status.status, 'reauth_required');
    assert.equal(status.needs_reconnect, true);
    assert.equal(status.reauth_url, `${env.warrant.config.publicUrl}/v1/connections/${c}`);
    assert.ok(status.last_error);
    const other = problemOf(await client.callTool({ name: 'connection_status', arguments: { connection: conn } }));
    assert.equal(other.code, 'policy_denied', 'a connection without a grant is not described');
  });

  test('provider_detail: auth, lifetimes, rotation, scope rules; never a client id or secret', async () => {
    const { client } = await connectClient(readerKey);
    const r = await client.callTool({ name: 'provider_detail', arguments: { provider: 'sandbox' } });
    assert.ok(!r.isError, JSON.stringify(r));
    const d = r.structuredContent as { id: string; auth: string; scopes: Record<string, unknown[]>; rotation: { refresh_token_rotation: boolean } };
    assert.equal(d.id, 'sandbox');
    assert.equal(d.auth, 'oauth2');
    assert.ok(d.scopes['items:read']?.length);
    assert.equal(typeof d.rotation.refresh_token_rotation, 'boolean');
    const text = JSON.stringify(r);
    assert.ok(!/client_secret|client_id/.test(text), text);
    const def = env.warrant.catalog.get('sandbox')!;
    const secret = def.client_secret ?? def.environments.production?.client_secret;
    if (typeof secret === 'string') assert.ok(!text.includes(secret));
    assert.equal(problemOf(await client.callTool({ name: 'provider_detail', arguments: { provider: 'nope' } })).code, 'not_found');
  });

  test('request_access: a link for the owner (new connection, or a step-up keeping held scopes); nothing is granted', async () => {
    const { client } = await connectClient(readerKey);
    const fresh = (await client.callTool({ name: 'request_access', arguments: { provider: 'sandbox', scopes: ['items:read'], reason: 'read the items' } })).structuredContent as Record<string, unknown>;
    assert.equal(fresh.kind, 'new_connection');
    assert.equal(fresh.owner, 'alice@example.com');
    assert.ok(String(fresh.link).startsWith(`${env.warrant.config.publicUrl}/connect/`), String(fresh.link));
    const up = (await client.callTool({ name: 'request_access', arguments: { connection: conn, scopes: ['items:write'] } })).structuredContent as Record<string, unknown>;
    assert.equal(up.kind, 'step_up');
    assert.ok((up.scopes as string[]).includes('items:read') && (up.scopes as string[]).includes('items:write'), 'held scopes are kept');
    const session = await env.warrant.connect.getSession(String(up.session));
    assert.equal(session.status, 'pending', 'a session waiting for the owner, not an approval');
    const agent = (await env.warrant.app.inject({ method: 'GET', url: '/v1/agents', headers: admin })).json().agents.find((a: { name: string }) => a.name === 'reader');
    assert.deepEqual(agent.grants.map((g: { scopes: string[] }) => g.scopes), [['items:read']], "the agent's grant is unchanged");
    const both = problemOf(await client.callTool({ name: 'request_access', arguments: { provider: 'sandbox', connection: conn, scopes: ['items:read'] } }));
    assert.equal(both.code, 'invalid_request');
    assert.equal(both.field, 'arguments.provider');
    const requested = await eventually(async () => (await env.warrant.audit.query({ type: 'access.requested' })).length >= 2);
    assert.ok(requested);
  });

  test("session hijack: another agent's credential on a session id is refused (404), the owner's session goes on", async () => {
    const { client, transport } = await connectClient(readerKey);
    const sid = transport.sessionId!;
    const hijack = await post(writerKey, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' });
    assert.equal(hijack.status, 404);
    assert.equal((await hijack.json()).error.code, -32001);
    const noKey = await post(undefined, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { 'mcp-session-id': sid });
    assert.equal(noKey.status, 401, 'a session id is no credential');
    const r = await client.callTool({ name: 'list_connections', arguments: {} });
    assert.ok(!r.isError);
    await eventually(async () => (await env.warrant.audit.query({ type: 'mcp.session_refused' })).length >= 1);
  });

  test('every tool call is audited: tool, a keyed hash of the arguments, outcome; never the arguments in clear', async () => {
    // A connection of its own: earlier tests' call_api entries (written behind their answers) are not this test's.
    const conn = await env.connect();
    const { client } = await connectClient((await createAgent([{ connection: conn, scopes: ['items:read', 'items:write'] }], 'auditee')).key);
    const okCalls = async () =>
      (await env.warrant.audit.query({ type: 'mcp.tool_call', limit: 1000 })).filter((e) => e.data.tool === 'call_api' && e.subject === `connection:${conn}` && e.data.outcome === 'ok');
    const marker = `marker-${Date.now()}-secret-looking-value`;
    const r = await client.callTool({ name: 'call_api', arguments: { connection: conn, method: 'POST', path: '/items', body: { name: marker }, query: { note: marker } } });
    assert.ok(!r.isError, JSON.stringify(r));
    await client.callTool({ name: 'call_api', arguments: { connection: conn, method: 'POST', path: '/items', body: { name: marker }, query: { note: marker } } });
    const entries = await eventually(async () => {
      const all = await env.warrant.audit.query({ type: 'mcp.tool_call', limit: 1000 });
      const mine = await okCalls();
      return mine.length >= 2 ? { all, mine } : undefined;
    });
    const last = entries.mine.slice(-2);
    assert.match(String(last[0]!.data.arguments_hash), /^hmac-sha256:[A-Za-z0-9_-]{43}$/);
    assert.equal(last[0]!.data.arguments_hash, last[1]!.data.arguments_hash, 'equal arguments, equal hash');
    assert.equal(last[0]!.data.code, null);
    const failed = entries.all.find((e) => e.data.outcome === 'error' && e.data.code === 'policy_denied');
    assert.ok(failed, 'failed calls are audited with their code');
    const everything = JSON.stringify(await env.warrant.audit.query({ limit: 1000 }));
    assert.ok(!everything.includes(marker), 'no argument in clear anywhere in the audit log');
    assert.ok(!env.logs.text().includes(marker), 'nor in the logs');
  });
});
