import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify, type JWTPayload } from 'jose';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { sleep } from '../helpers/lifecycle.ts';
import { authorizationUrl, authorizeAsOwner, discover, insecure, registerPublicClient, startAuthzWarrant, type AuthzWarrant } from './helpers.ts';

// Delegation with RFC 8693 token exchange: an agent's key or one of Warrant's access tokens becomes
// a narrower JWT for one resource, `act` recording owner → agent → sub-agent; never wider.

const OWNER = 'te-owner@example.com';
const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AGENT_KEY = 'urn:warrant:params:oauth:token-type:agent-key';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const REDIRECT = 'http://127.0.0.1:53690/callback';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

interface Actor {
  client: oauth.Client;
  auth: oauth.ClientAuth;
  agentId?: string;
}

describe('token exchange (RFC 8693)', () => {
  let w: AuthzWarrant;
  let as: oauth.AuthorizationServer;
  let mcp: string;
  let api: string;
  let demo: string;
  let planner: { id: string; key: string };
  let sub1: Actor;
  let sub2: Actor;
  let jwks: ReturnType<typeof createRemoteJWKSet>;

  async function createAgent(name: string, extra: Record<string, unknown> = {}) {
    const res = await fetch(`${w.base}/v1/agents`, { method: 'POST', headers: admin, body: JSON.stringify({ name, owner: OWNER, grants: [{ connection: 'con_te', scopes: ['items:read'] }], ...extra }) });
    assert.equal(res.status, 201, await res.clone().text());
    const body = (await res.json()) as { id: string; api_key: string };
    return { id: body.id, key: body.api_key };
  }

  /** A sub-agent: a headless client (private_key_jwt) an admin bound to `owner`. */
  async function headless(name: string, owner = OWNER): Promise<Actor> {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const kid = `k-${name}`;
    const res = await fetch(`${w.base}/v1/authz/clients`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ owner, client_name: name, jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] } }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    const reg = (await res.json()) as { client_id: string; agent_id: string };
    return { client: { client_id: reg.client_id, token_endpoint_auth_method: 'private_key_jwt' }, auth: oauth.PrivateKeyJwt({ key: privateKey, kid }), agentId: reg.agent_id };
  }

  const exchange = (actor: Actor, params: Record<string, string | string[]>) => {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const one of ([] as string[]).concat(v)) body.append(k, one);
    return oauth.genericTokenEndpointRequest(as, actor.client, actor.auth, TE, body, insecure);
  };
  const keyParams = (key: string, resource: string, scope?: string) => ({ subject_token: key, subject_token_type: AGENT_KEY, resource, ...(scope ? { scope } : {}) });
  const tokenParams = (token: string, resource: string, scope?: string) => ({ subject_token: token, subject_token_type: ACCESS_TOKEN, resource, ...(scope ? { scope } : {}) });

  async function issued(actor: Actor, res: Response) {
    assert.equal(res.status, 200, await res.clone().text());
    const raw = (await res.clone().json()) as Record<string, unknown>;
    assert.equal(raw.issued_token_type, ACCESS_TOKEN);
    assert.equal(raw.refresh_token, undefined, 'an exchange gives no refresh token');
    const tokens = await oauth.processGenericTokenEndpointResponse(as, actor.client, res);
    return { token: tokens.access_token, scope: tokens.scope, expiresIn: tokens.expires_in };
  }

  async function refused(res: Response, error: string, what: string) {
    const body = (await res.json()) as { error: string; error_description?: string };
    assert.equal(body.error, error, `${what}: ${JSON.stringify(body)}`);
    assert.ok(res.status === 400 || res.status === 401, `${what}: ${res.status}`);
    return body;
  }

  const claimsOf = async (token: string, aud: string): Promise<JWTPayload> => (await jwtVerify(token, jwks, { issuer: w.base, audience: aud, typ: 'at+jwt' })).payload;

  async function rejectedFor(token: string, resource: string) {
    await assert.rejects(w.warrant.authz.verifyAccessToken(token, { resource }), (e: { code?: string }) => e.code === 'agent_unauthenticated');
  }

  before(async () => {
    w = await startAuthzWarrant('sqlite');
    as = await discover(w.base, w.base);
    jwks = createRemoteJWKSet(new URL(as.jwks_uri!));
    mcp = `${w.base}/mcp/warrant`;
    api = `${w.base}/v1`;
    demo = `${w.base}/mcp/demo`;
    const now = Date.now();
    await w.warrant.store.connections.insert({
      id: 'con_te', provider: 'acme', environment: 'production', owner: OWNER, status: 'active',
      scopes: JSON.stringify(['items:read']), requested_scopes: JSON.stringify(['items:read']), params: '{}',
      expires_at: now + 3_600_000, refresh_due_at: now + 3_000_000, last_refreshed_at: null, last_error: null, next_attempt_at: null, created_at: now, updated_at: now,
    });
    planner = await createAgent('planner');
    sub1 = await headless('sub-agent-1');
    sub2 = await headless('sub-agent-2');
  });
  after(() => w?.cleanup());

  test("an agent key becomes a narrower token for one resource: sub the owner, agent_id the agent, act the sub-agent then the agent", async () => {
    assert.ok(as.grant_types_supported?.includes(TE), 'the metadata lists the grant');
    const t = await issued(sub1, await exchange(sub1, keyParams(planner.key, mcp, 'warrant:read')));
    assert.equal(t.scope, 'warrant:read');
    const c = await claimsOf(t.token, mcp);
    assert.equal(c.sub, OWNER);
    assert.equal(c.client_id, sub1.client.client_id);
    assert.equal(c.agent_id, planner.id);
    assert.equal(c.scope, 'warrant:read');
    assert.deepEqual(c.act, { sub: sub1.agentId, client_id: sub1.client.client_id, act: { sub: planner.id } });
    assert.ok(c.exp! - c.iat! <= 600 && c.exp! - c.iat! > 0);

    // Accepted where it should be, and refused at every other resource.
    const v = await w.warrant.authz.verifyAccessToken(t.token, { resource: mcp });
    assert.equal(v.agentId, planner.id);
    assert.equal(v.owner, OWNER);
    assert.deepEqual(v.scopes, ['warrant:read']);
    await rejectedFor(t.token, api);
    await rejectedFor(t.token, demo);
    const listed = await fetch(mcp, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${t.token}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(listed.status, 200);

    // With no scope asked: every scope of the resource (an agent key holds them all).
    const all = await issued(sub1, await exchange(sub1, keyParams(planner.key, mcp)));
    assert.deepEqual(all.scope?.split(' ').sort(), ['warrant:call', 'warrant:read', 'warrant:request']);
    const forApi = await issued(sub1, await exchange(sub1, keyParams(planner.key, api)));
    assert.equal(forApi.scope, 'warrant:api');
    assert.equal((await claimsOf(forApi.token, api)).aud, api);
  });

  test('a token exchanged again narrows further, its lifetime within the first, act nested once more', async () => {
    const first = await issued(sub1, await exchange(sub1, keyParams(planner.key, mcp, 'warrant:read warrant:call')));
    const firstClaims = await claimsOf(first.token, mcp);
    const second = await issued(sub2, await exchange(sub2, tokenParams(first.token, mcp, 'warrant:read')));
    assert.equal(second.scope, 'warrant:read');
    const c = await claimsOf(second.token, mcp);
    assert.equal(c.sub, OWNER);
    assert.equal(c.agent_id, planner.id);
    assert.equal(c.client_id, sub2.client.client_id);
    assert.deepEqual(c.act, {
      sub: sub2.agentId,
      client_id: sub2.client.client_id,
      act: { sub: sub1.agentId, client_id: sub1.client.client_id, act: { sub: planner.id } },
    });
    assert.ok(c.exp! <= firstClaims.exp!, 'never outlives its subject');
    assert.deepEqual((await w.warrant.authz.verifyAccessToken(second.token, { resource: mcp })).scopes, ['warrant:read']);
    await rejectedFor(second.token, api);
  });

  test('widening is refused: scope, resource, and the requests that are not exchanges', async () => {
    const narrow = await issued(sub1, await exchange(sub1, keyParams(planner.key, mcp, 'warrant:read')));
    await refused(await exchange(sub2, tokenParams(narrow.token, mcp, 'warrant:read warrant:call')), 'invalid_scope', 'a scope the subject lacks');
    await refused(await exchange(sub2, tokenParams(narrow.token, api)), 'invalid_target', 'another resource');
    await refused(await exchange(sub2, tokenParams(narrow.token, demo, 'mcp')), 'invalid_target', 'an MCP server the token is not for');
    await refused(await exchange(sub2, tokenParams(narrow.token, 'https://elsewhere.example.com/mcp')), 'invalid_target', 'not a Warrant resource');
    await refused(await exchange(sub2, { ...tokenParams(narrow.token, mcp), resource: [mcp, api] }), 'invalid_target', 'two resources');
    await refused(await exchange(sub1, keyParams(planner.key, mcp, 'warrant:api')), 'invalid_scope', "a scope of another resource");
    await refused(await exchange(sub1, keyParams(planner.key, mcp, 'warrant:read offline_access')), 'invalid_scope', 'offline_access');

    const noResource = await refused(await exchange(sub1, { subject_token: planner.key, subject_token_type: AGENT_KEY }), 'invalid_request', 'no resource');
    assert.match(noResource.error_description ?? '', /resource/);
    const badType = await refused(await exchange(sub1, { ...keyParams(planner.key, mcp), subject_token_type: 'urn:ietf:params:oauth:token-type:id_token' }), 'invalid_request', 'a subject type Warrant does not take');
    assert.match(badType.error_description ?? '', /subject_token_type/);
    await refused(await exchange(sub1, { ...keyParams(planner.key, mcp), subject_token_type: ACCESS_TOKEN }), 'invalid_request', 'a key presented as an access token');
    await refused(await exchange(sub1, keyParams(`wrt_AAAAAAAAAAAA_${'A'.repeat(43)}`, mcp)), 'invalid_request', 'an unknown key');
    await refused(await exchange(sub1, { ...keyParams(planner.key, mcp), actor_token: narrow.token, actor_token_type: ACCESS_TOKEN }), 'invalid_request', 'an actor token');
    await refused(await exchange(sub1, { ...keyParams(planner.key, mcp), requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }), 'invalid_request', 'a refresh token asked');
    // A refusal never echoes the subject token.
    const echoed = await (await exchange(sub2, tokenParams(narrow.token, api))).text();
    assert.ok(!echoed.includes(narrow.token) && !echoed.includes(planner.key.slice(17)));
  });

  test('the client must be registered, an agent of the owner, and a public client only narrows what its own agent holds', async () => {
    // Unknown client; another owner's sub-agent.
    const stranger: Actor = { client: { client_id: 'wcl_nobody', token_endpoint_auth_method: 'none' }, auth: oauth.None() };
    await refused(await exchange(stranger, keyParams(planner.key, mcp)), 'invalid_client', 'unknown client');
    const elsewhere = await headless('other-owners-agent', 'someone-else@example.com');
    await refused(await exchange(elsewhere, keyParams(planner.key, mcp)), 'unauthorized_client', "another owner's client");

    // A public client the owner authorized: its own token narrows, act names it once; another agent's key does not.
    const client = await registerPublicClient(as, REDIRECT);
    const pub: Actor = { client, auth: oauth.None() };
    await refused(await exchange(pub, keyParams(planner.key, mcp)), 'unauthorized_client', 'a public client the owner never authorized');
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const { callback } = await authorizeAsOwner(w.base, await authorizationUrl(as, client, { redirectUri: REDIRECT, resource: mcp, verifier, state }), OWNER);
    const own = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), oauth.validateAuthResponse(as, client, callback, state), REDIRECT, verifier, insecure),
    );
    const ownAgent = (await claimsOf(own.access_token, mcp)).agent_id as string;
    await refused(await exchange(pub, keyParams(planner.key, mcp)), 'unauthorized_client', "a public client with another agent's key");
    const narrowed = await issued(pub, await exchange(pub, tokenParams(own.access_token, mcp, 'warrant:read')));
    const c = await claimsOf(narrowed.token, mcp);
    assert.equal(c.agent_id, ownAgent);
    assert.deepEqual(c.act, { sub: ownAgent, client_id: client.client_id });
    // A sub-agent takes over from the public client's token: one more actor.
    const delegated = await issued(sub1, await exchange(sub1, tokenParams(narrowed.token, mcp)));
    assert.equal(delegated.scope, 'warrant:read');
    assert.deepEqual((await claimsOf(delegated.token, mcp)).act, { sub: sub1.agentId, client_id: sub1.client.client_id, act: { sub: ownAgent, client_id: client.client_id } });
    // But the public client cannot take the sub-agent's token back.
    await refused(await exchange(pub, tokenParams(delegated.token, mcp)), 'unauthorized_client', "a public client with a token another agent acts on");
  });

  test("a revoked agent's key and tokens are refused, and so are tokens whose acting sub-agent was revoked", async () => {
    const doomed = await createAgent('doomed');
    const t = await issued(sub1, await exchange(sub1, keyParams(doomed.key, mcp, 'warrant:read')));
    const revoked = await fetch(`${w.base}/v1/agents/${doomed.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(revoked.status, 200);
    await refused(await exchange(sub1, keyParams(doomed.key, mcp)), 'invalid_request', "a revoked agent's key");
    await sleep(1100); // the verifier reuses an agent's state for at most a second
    await refused(await exchange(sub2, tokenParams(t.token, mcp)), 'invalid_request', "a revoked agent's token");
    await rejectedFor(t.token, mcp);

    const sub3 = await headless('sub-agent-3');
    const t3 = await issued(sub3, await exchange(sub3, keyParams(planner.key, mcp, 'warrant:read')));
    await w.warrant.authz.verifyAccessToken(t3.token, { resource: mcp });
    assert.equal((await fetch(`${w.base}/v1/agents/${sub3.agentId}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status, 200);
    await sleep(1100);
    await rejectedFor(t3.token, mcp);
  });

  test('every exchange is audited: subject agent, actor chain, resource, scopes; a refusal with its error; never a token', async () => {
    // Regression: exchanges were only logged, so the audit log could not say who delegated what to whom.
    const first = await issued(sub1, await exchange(sub1, keyParams(planner.key, mcp, 'warrant:read warrant:call')));
    const second = await issued(sub2, await exchange(sub2, tokenParams(first.token, mcp, 'warrant:read')));
    const wider = await exchange(sub2, tokenParams(second.token, mcp, 'warrant:read warrant:request'));
    await refused(wider, 'invalid_scope', 'wider');

    const done = await w.warrant.audit.query({ type: 'authz.token_exchanged', limit: 1000 });
    const jtiOf = async (token: string) => (await claimsOf(token, mcp)).jti;
    const byJti = async (token: string) => {
      const jti = await jtiOf(token);
      const found = done.filter((e) => (e.data as Record<string, unknown>).jti === jti);
      assert.equal(found.length, 1, 'one entry per exchange');
      return found[0]!;
    };
    const a = await byJti(first.token);
    assert.equal(a.actor, `agent:${sub1.agentId}`);
    assert.equal(a.subject, `agent:${planner.id}`);
    assert.deepEqual(a.data, {
      owner: OWNER,
      client_id: sub1.client.client_id,
      resource: mcp,
      scopes: ['warrant:read', 'warrant:call'],
      subject_token_type: 'agent_key',
      act: [{ sub: sub1.agentId, client_id: sub1.client.client_id }, { sub: planner.id }],
      jti: await jtiOf(first.token),
      expires_at: new Date((await claimsOf(first.token, mcp)).exp! * 1000).toISOString(),
    });
    const b = await byJti(second.token);
    assert.equal(b.actor, `agent:${sub2.agentId}`);
    assert.equal(b.subject, `agent:${planner.id}`);
    const bd = b.data as Record<string, unknown>;
    assert.equal(bd.subject_token_type, 'access_token');
    assert.deepEqual(bd.scopes, ['warrant:read']);
    assert.deepEqual(bd.act, [{ sub: sub2.agentId, client_id: sub2.client.client_id }, { sub: sub1.agentId, client_id: sub1.client.client_id }, { sub: planner.id }]);

    const refusals = await w.warrant.audit.query({ type: 'authz.token_exchange_refused', limit: 1000 });
    const r = refusals.filter((e) => (e.data as Record<string, unknown>).error === 'invalid_scope' && (e.data as Record<string, unknown>).client_id === sub2.client.client_id && e.actor === `agent:${sub2.agentId}`);
    assert.ok(r.length >= 1, JSON.stringify(refusals));
    const rd = r.at(-1)!.data as Record<string, unknown>;
    assert.equal(rd.resource, mcp);
    assert.equal(rd.subject_token_type, 'access_token');
    assert.equal(r.at(-1)!.subject, `agent:${planner.id}`);
    assert.match(String(rd.error_description), /warrant:request/);

    const text = JSON.stringify([...done, ...refusals]);
    for (const t of [first.token, second.token]) assert.ok(!text.includes(t.split('.')[2]!), 'no token in the audit log');
    assert.ok(!text.includes(planner.key.slice(17)), 'no agent key in the audit log');
  });

  test("an exchanged token ends no later than the agent's own expiry", async () => {
    const expiresAt = Date.now() + 90_000;
    const shortLived = await createAgent('short-lived', { expires_at: new Date(expiresAt).toISOString() });
    const t = await issued(sub1, await exchange(sub1, keyParams(shortLived.key, mcp)));
    assert.ok(t.expiresIn! <= 90, `expires_in ${t.expiresIn}`);
    assert.ok((await claimsOf(t.token, mcp)).exp! <= Math.floor(expiresAt / 1000));
  });
});
