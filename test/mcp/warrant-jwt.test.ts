import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';
import { SignJWT, importJWK, generateKeyPair } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { loadOrCreateKeys } from '../../src/authz/keys.ts';
import { eventually, sleep } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { authorizationUrl, authorizeAsOwner, discover, insecure, registerPublicClient, startAuthzWarrant, type AuthzWarrant } from '../authz/helpers.ts';

// /mcp/warrant as a resource server for Warrant's own authorization server: an RFC 9068 JWT for
// exactly `{public}/mcp/warrant` is a caller; any other is refused with RFC 6750 challenges, and a
// missing scope asks for the whole accumulated set (step-up that adds, never replaces).

const REDIRECT = 'http://127.0.0.1:53683/callback';

describe('/mcp/warrant accepts Warrant access tokens', () => {
  let w: AuthzWarrant;
  let as: oauth.AuthorizationServer;
  let resource: string;
  const owner = 'jwt-owner@example.com';

  async function tokenFor(res: string, scope?: string, who = owner, client?: oauth.Client) {
    const c = client ?? (await registerPublicClient(as, REDIRECT));
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = await authorizationUrl(as, c, { redirectUri: REDIRECT, resource: res, verifier, state, scope });
    const { callback } = await authorizeAsOwner(w.base, url, who);
    const params = oauth.validateAuthResponse(as, c, callback, state);
    const tokens = await oauth.processAuthorizationCodeResponse(as, c, await oauth.authorizationCodeGrantRequest(as, c, oauth.None(), params, REDIRECT, verifier, insecure));
    return { client: c, token: tokens.access_token, scope: tokens.scope };
  }

  const rpc = (token: string | undefined, body: unknown) =>
    fetch(`${w.base}/mcp/warrant`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
  const call = (token: string, name: string, args: Record<string, unknown> = {}) => rpc(token, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args } });

  function assertInvalidToken(res: Response, what: string) {
    assert.equal(res.status, 401, what);
    const challenge = res.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer /, what);
    assert.match(challenge, /error="invalid_token"/, what);
    assert.match(challenge, /resource_metadata="[^"]+\/\.well-known\/oauth-protected-resource\/mcp\/warrant"/, what);
  }

  before(async () => {
    w = await startAuthzWarrant('sqlite');
    as = await discover(w.base, w.base);
    resource = `${w.base}/mcp/warrant`;
  });
  after(() => w?.cleanup());

  test('a token for /mcp/warrant works with the official SDK client; with no scope asked it carries all three', async () => {
    const { token, scope } = await tokenFor(resource);
    assert.deepEqual(scope?.split(' ').sort(), ['warrant:call', 'warrant:read', 'warrant:request']);
    const transport = new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
    const client = new Client({ name: 'jwt-test', version: '1' });
    await client.connect(transport);
    try {
      const tools = await client.listTools();
      assert.ok(tools.tools.some((t) => t.name === 'list_connections'));
      const listed = await client.callTool({ name: 'list_connections', arguments: {} });
      assert.notEqual(listed.isError, true, JSON.stringify(listed));
    } finally {
      await client.close();
    }
    const verified = await w.warrant.authz.verifyAccessToken(token, { resource });
    assert.equal(verified.owner, owner);
    assert.match(verified.agentId, /^agt_/);
    assert.deepEqual([...verified.scopes].sort(), ['warrant:call', 'warrant:read', 'warrant:request']);
  });

  test('a token for another resource, an expired one, a foreign one and garbage are refused 401 invalid_token', async () => {
    const other = await tokenFor(`${w.base}/mcp/demo`, 'mcp');
    assertInvalidToken(await rpc(other.token, { jsonrpc: '2.0', id: 1, method: 'tools/list' }), 'wrong audience');
    await assert.rejects(w.warrant.authz.verifyAccessToken(other.token, { resource }), (e: Error & { code?: string }) => e.code === 'agent_unauthenticated' && !e.message.includes(other.token));

    // Signed with the server's own key, right audience, expired a minute ago.
    const good = await tokenFor(resource);
    const claims = JSON.parse(Buffer.from(good.token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    const keys = await loadOrCreateKeys(w.warrant.store.vault);
    const jwk = keys.jwks.keys[0]!;
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ ...claims, iat: now - 700, exp: now - 60 })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: jwk.kid! })
      .sign(await importJWK(jwk, 'RS256'));
    assertInvalidToken(await rpc(expired, { jsonrpc: '2.0', id: 1, method: 'tools/list' }), 'expired');

    // The same claims under a key Warrant does not hold.
    const foreign = await generateKeyPair('RS256');
    const forged = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: jwk.kid! }).sign(foreign.privateKey);
    assertInvalidToken(await rpc(forged, { jsonrpc: '2.0', id: 1, method: 'tools/list' }), 'foreign key');
    // A JWT that is not an access token (typ) is refused too.
    const idTokenish = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'RS256', kid: jwk.kid! }).sign(await importJWK(jwk, 'RS256'));
    assertInvalidToken(await rpc(idTokenish, { jsonrpc: '2.0', id: 1, method: 'tools/list' }), 'typ');
    assertInvalidToken(await rpc('not.a.token', { jsonrpc: '2.0', id: 1, method: 'tools/list' }), 'garbage');

    // The right one still works.
    assert.equal((await rpc(good.token, { jsonrpc: '2.0', id: 1, method: 'tools/list' })).status, 200);
  });

  test("an offboarded owner's tokens are refused within a second", async () => {
    const who = 'leaving@example.com';
    const { token } = await tokenFor(resource, undefined, who);
    assert.equal((await rpc(token, { jsonrpc: '2.0', id: 1, method: 'tools/list' })).status, 200);
    await w.warrant.store.db.updateTable('owners').set({ status: 'offboarded', offboarded_at: Date.now() }).where('id', '=', who).execute();
    await sleep(1100);
    const res = await rpc(token, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assertInvalidToken(res, 'offboarded owner');
    const body = (await res.json()) as { detail: string };
    assert.ok(!body.detail.includes(token));
  });

  test('every refused token is audited once with its reason and the agent when known, never the token', async () => {
    // Regression: refusals at /mcp/warrant left no trace in the audit log (only foreign session ids did).
    const refusals: { res: Response; reason: string; agent?: string; token: string; status?: number }[] = [];
    const refuse = async (token: string, reason: string, agent?: string, body: unknown = { jsonrpc: '2.0', id: 1, method: 'tools/list' }, status = 401) => {
      const res = await rpc(token, body);
      assert.equal(res.status, status, reason);
      await res.body?.cancel();
      refusals.push({ res, reason, agent, token, status });
    };
    const agentOf = (token: string) => (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { agent_id: string }).agent_id;

    const other = await tokenFor(`${w.base}/mcp/demo`, 'mcp');
    await refuse(other.token, 'wrong_audience', agentOf(other.token));
    const good = await tokenFor(resource);
    const claims = JSON.parse(Buffer.from(good.token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    const jwk = (await loadOrCreateKeys(w.warrant.store.vault)).jwks.keys[0]!;
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ ...claims, iat: now - 700, exp: now - 60 }).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: jwk.kid! }).sign(await importJWK(jwk, 'RS256'));
    await refuse(expired, 'expired', agentOf(good.token));
    const forged = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: jwk.kid! }).sign((await generateKeyPair('RS256')).privateKey);
    await refuse(forged, 'not_issued_here');
    await refuse('not.a.token', 'not_issued_here');
    await refuse(`wrt_AAAAAAAAAAAA_${'A'.repeat(43)}`, 'agent_key_invalid');
    const narrow = await tokenFor(resource, 'warrant:read');
    await refuse(narrow.token, 'insufficient_scope', agentOf(narrow.token), { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'call_api', arguments: {} } }, 403);
    const doomed = await tokenFor(resource, undefined, 'revoked-agent-owner@example.com');
    const revoked = await fetch(`${w.base}/v1/agents/${agentOf(doomed.token)}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(revoked.status, 200);
    await sleep(1100);
    await refuse(doomed.token, 'agent_inactive', agentOf(doomed.token));
    // No credential at all is discovery, not a refusal: not audited.
    const bare = await fetch(resource, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
    assert.equal(bare.status, 401);
    const bareId = bare.headers.get('warrant-request-id')!;

    const entries = await eventually(async () => {
      const all = await w.warrant.audit.query({ type: 'mcp.token_refused', limit: 1000 });
      const ids = new Set(all.map((e) => (e.data as Record<string, unknown>).request_id));
      return refusals.every((r) => ids.has(r.res.headers.get('warrant-request-id'))) ? all : undefined;
    });
    for (const r of refusals) {
      const id = r.res.headers.get('warrant-request-id');
      const mine = entries.filter((e) => (e.data as Record<string, unknown>).request_id === id);
      assert.equal(mine.length, 1, `${r.reason}: one entry per refusal`);
      const d = mine[0]!.data as Record<string, unknown>;
      assert.equal(d.reason, r.reason);
      assert.equal(d.endpoint, '/mcp/warrant');
      assert.equal(d.status, r.status);
      assert.equal(mine[0]!.actor, r.agent ? `agent:${r.agent}` : 'anonymous', r.reason);
      if (r.reason === 'insufficient_scope') assert.equal(d.required_scope, 'warrant:call');
    }
    assert.ok(!entries.some((e) => (e.data as Record<string, unknown>).request_id === bareId));
    const text = JSON.stringify(entries);
    for (const r of refusals) assert.ok(!text.includes(r.token.slice(-20)), `${r.reason}: no token material in the audit log`);
  });

  test('a missing scope is 403 insufficient_scope naming the accumulated set; the step-up token then passes', async () => {
    const first = await tokenFor(resource, 'warrant:read');
    assert.equal(first.scope, 'warrant:read');
    // A read tool passes.
    const listed = await call(first.token, 'list_connections');
    assert.equal(listed.status, 200);
    // call_api needs warrant:call.
    const refused = await call(first.token, 'call_api', { connection: 'con_x', method: 'GET', path: '/items' });
    assert.equal(refused.status, 403);
    const challenge = refused.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer /);
    assert.match(challenge, /error="insufficient_scope"/);
    const asked = /scope="([^"]*)"/.exec(challenge)?.[1]?.split(' ').sort();
    assert.deepEqual(asked, ['warrant:call', 'warrant:read'], challenge);
    assert.match(challenge, /resource_metadata="/);
    const problem = (await refused.json()) as { required_scope?: string };
    assert.equal(problem.required_scope, 'warrant:call');

    // The client asks for exactly what the challenge named, with the same registration.
    const stepped = await tokenFor(resource, asked!.join(' '), owner, first.client);
    assert.deepEqual(stepped.scope?.split(' ').sort(), ['warrant:call', 'warrant:read']);
    const passed = await call(stepped.token, 'call_api', { connection: 'con_x', method: 'GET', path: '/items' });
    assert.equal(passed.status, 200, 'the scope gate passes (the call itself then fails as a tool result)');
    // request_access is still out of reach: the next challenge adds to what the token has.
    const next = await call(stepped.token, 'request_access', { provider: 'sandbox' });
    assert.equal(next.status, 403);
    assert.deepEqual(/scope="([^"]*)"/.exec(next.headers.get('www-authenticate') ?? '')?.[1]?.split(' ').sort(), ['warrant:call', 'warrant:read', 'warrant:request']);
  });
});
