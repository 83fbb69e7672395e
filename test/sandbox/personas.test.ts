import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { loadBuiltinProviders, readProviderPath } from '../../src/providers/loader.ts';
import { runWarrant } from '../helpers/process.ts';

// Each persona spoken to over HTTP as its provider's documentation says a client must, no Warrant
// in between: the code exchange in the provider's format, its answer's shape, refresh with its
// rotation/grace/reuse rule, its missing-scope and expired shapes, and its revocation shape.

const redirectUri = 'http://127.0.0.1:9/callback';
const client = { id: 'warrant-sandbox', secret: 'warrant-sandbox-secret' };
const basic = `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`;

interface Reply {
  status: number;
  body: any;
  headers: Headers;
}

async function call(url: string, init: { method?: string; form?: Record<string, string>; json?: unknown; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...init.headers };
  let body: string | undefined;
  if (init.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(init.form).toString();
  } else if (init.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(init.json);
  }
  const res = await fetch(url, { method: init.method ?? (body ? 'POST' : 'GET'), headers, body, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* form-encoded or empty */
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Runs the persona's authorization endpoint (auto-approve, PKCE S256) and returns the callback and verifier. */
async function authorize(sb: Sandbox, realUrl: string, params: Record<string, string>): Promise<{ callback: URL; code: string; verifier: string }> {
  const verifier = randomBytes(32).toString('base64url');
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: client.id,
    redirect_uri: redirectUri,
    state: 'st-1',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    ...params,
  });
  const callback = new URL(await sb.persona!.follow(`${sb.persona!.url(realUrl)}?${q}`));
  assert.equal(callback.searchParams.get('state'), 'st-1');
  const code = callback.searchParams.get('code');
  assert.ok(code, `a code on the callback: ${callback.search}`);
  return { callback, code, verifier };
}

function personaSuite(id: string, body: (get: () => Sandbox) => void): void {
  describe(`persona ${id}`, () => {
    let sb: Sandbox;
    before(async () => {
      sb = await startSandbox({ persona: id });
    });
    after(() => sb.close());
    body(() => sb);
  });
}

personaSuite('slack', (get) => {
  const token = 'https://slack.com/api/oauth.v2.access';
  const api = (sb: Sandbox, method: string, t: string) => call(sb.persona!.url(`https://slack.com/api/${method}`), { method: 'POST', headers: { authorization: `Bearer ${t}` } });
  let bot: { access_token: string; refresh_token: string };

  test('code exchange: HTTP Basic, form body; 200 ok:true, token_type bot, comma scopes, authed_user with the user token set', async () => {
    const sb = get();
    const { code, verifier, callback } = await authorize(sb, 'https://slack.com/oauth/v2/authorize', { scope: 'chat:write,channels:read', user_scope: 'search:read' });
    assert.equal(callback.searchParams.get('iss'), null, 'Slack sends no iss');
    const r = await call(sb.persona!.url(token), { form: { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }, headers: { authorization: basic } });
    assert.equal(r.status, 200);
    assert.equal(r.body.ok, true);
    assert.equal(r.body.token_type, 'bot');
    assert.equal(r.body.scope, 'chat:write,channels:read');
    assert.match(r.body.access_token, /^xoxb-/);
    assert.equal(r.body.expires_in, 43200);
    assert.equal(r.body.authed_user.token_type, 'user');
    assert.equal(r.body.authed_user.scope, 'search:read');
    assert.match(r.body.authed_user.access_token, /^xoxp-/);
    const again = await call(sb.persona!.url(token), { form: { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }, headers: { authorization: basic } });
    assert.deepEqual([again.status, again.body], [200, { ok: false, error: 'invalid_code' }], 'a used code: 200 ok:false');
    assert.deepEqual((await api(sb, 'auth.test', r.body.access_token)).body.error, 'token_revoked', 'a code used twice revokes what it issued');
    const fresh = await authorize(sb, 'https://slack.com/oauth/v2/authorize', { scope: 'chat:write,channels:read' });
    bot = (await call(sb.persona!.url(token), { form: { grant_type: 'authorization_code', code: fresh.code, redirect_uri: redirectUri, code_verifier: fresh.verifier }, headers: { authorization: basic } })).body;
    assert.equal(bot.refresh_token.startsWith('xoxe-1-'), true);
  });

  test('API: allowed call, missing_scope with needed/provided, body-level expiry, then refresh rotates and the old refresh token dies', async () => {
    const sb = get();
    assert.equal((await api(sb, 'chat.postMessage', bot.access_token)).body.ok, true);
    const missing = await api(sb, 'users.list', bot.access_token);
    assert.deepEqual([missing.status, missing.body], [200, { ok: false, error: 'missing_scope', needed: 'users:read', provided: 'chat:write,channels:read' }]);
    sb.persona!.expireNextApiCalls(1);
    assert.deepEqual((await api(sb, 'auth.test', bot.access_token)).body, { ok: false, error: 'token_expired' });
    const r = await call(sb.persona!.url(token), { form: { grant_type: 'refresh_token', refresh_token: bot.refresh_token, client_id: client.id, client_secret: client.secret } });
    assert.equal(r.body.ok, true);
    assert.equal(r.body.token_type, 'bot');
    assert.notEqual(r.body.refresh_token, bot.refresh_token);
    const reuse = await call(sb.persona!.url(token), { form: { grant_type: 'refresh_token', refresh_token: bot.refresh_token }, headers: { authorization: basic } });
    assert.deepEqual(reuse.body, { ok: false, error: 'invalid_refresh_token' });
    bot = r.body;
    assert.equal(sb.stats().persona!.tokenRequests.refresh_token, 2);
  });

  test('auth.revoke with the bearer token: ok:true revoked:true; again: ok:false; the API then says token_revoked', async () => {
    const sb = get();
    const revoke = (t: string) => call(sb.persona!.url('https://slack.com/api/auth.revoke'), { method: 'POST', headers: { authorization: `Bearer ${t}` } });
    assert.deepEqual((await revoke(bot.access_token)).body, { ok: true, revoked: true });
    assert.deepEqual((await revoke(bot.access_token)).body, { ok: false, error: 'invalid_auth' });
    assert.deepEqual((await api(sb, 'auth.test', bot.access_token)).body, { ok: false, error: 'token_revoked' });
    const [first] = sb.stats().persona!.revocations;
    assert.deepEqual(first, { method: 'POST', contentType: undefined, auth: 'bearer', fields: [], status: 200 });
  });
});

personaSuite('github', (get) => {
  const token = 'https://github.com/login/oauth/access_token';
  let t: string;

  test('code exchange: client secret in the form; form-encoded answer by default, JSON with Accept; comma scopes, no expiry or refresh token', async () => {
    const sb = get();
    const a = await authorize(sb, 'https://github.com/login/oauth/authorize', { scope: 'repo gist' });
    const form = { grant_type: 'authorization_code', code: a.code, redirect_uri: redirectUri, code_verifier: a.verifier, client_id: client.id, client_secret: client.secret };
    const r = await call(sb.persona!.url(token), { form, headers: { accept: 'application/json' } });
    assert.equal(r.status, 200);
    assert.deepEqual(Object.keys(r.body).sort(), ['access_token', 'scope', 'token_type']);
    assert.equal(r.body.scope, 'repo,gist');
    assert.equal(r.body.token_type, 'bearer');
    const b = await authorize(sb, 'https://github.com/login/oauth/authorize', { scope: 'read:user' });
    const plain = await call(sb.persona!.url(token), { form: { ...form, code: b.code, code_verifier: b.verifier } });
    assert.match(plain.headers.get('content-type') ?? '', /x-www-form-urlencoded/);
    assert.equal(new URLSearchParams(plain.body as string).get('scope'), 'read:user');
    const bad = await call(sb.persona!.url(token), { form, headers: { accept: 'application/json' } });
    assert.equal(bad.status, 200, 'errors come as 200');
    assert.equal(bad.body.error, 'bad_verification_code');
    const c = await authorize(sb, 'https://github.com/login/oauth/authorize', { scope: 'repo gist' });
    t = (await call(sb.persona!.url(token), { form: { ...form, code: c.code, code_verifier: c.verifier }, headers: { accept: 'application/json' } })).body.access_token;
  });

  test('API: 403 with X-Accepted-OAuth-Scopes for a missing scope, 401 Bad credentials when expired', async () => {
    const sb = get();
    const api = (path: string) => call(sb.persona!.url(`https://api.github.com${path}`), { headers: { authorization: `Bearer ${t}` } });
    const ok = await api('/user/repos');
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('x-oauth-scopes'), 'repo, gist');
    const missing = await api('/user/emails');
    assert.equal(missing.status, 403);
    assert.equal(missing.headers.get('x-accepted-oauth-scopes'), 'user:email, user');
    sb.persona!.expireNextApiCalls(1);
    const expired = await api('/user');
    assert.deepEqual([expired.status, expired.body.message], [401, 'Bad credentials']);
    const refresh = await call(sb.persona!.url(token), { form: { grant_type: 'refresh_token', refresh_token: 'x', client_id: client.id, client_secret: client.secret }, headers: { accept: 'application/json' } });
    assert.deepEqual([refresh.status, refresh.body.error], [200, 'bad_refresh_token'], 'OAuth-app tokens have no refresh');
  });

  test('DELETE /applications/{client_id}/grant with Basic and {"access_token"}: 204, then 404; wrong client: 404', async () => {
    const sb = get();
    const url = sb.persona!.url(`https://api.github.com/applications/${client.id}/grant`);
    const del = (auth: string) => call(url, { method: 'DELETE', json: { access_token: t }, headers: { authorization: auth } });
    assert.equal((await del(`Basic ${Buffer.from(`${client.id}:wrong`).toString('base64')}`)).status, 404);
    assert.equal((await del(basic)).status, 204);
    assert.equal((await del(basic)).status, 404);
    const user = await call(sb.persona!.url('https://api.github.com/user'), { headers: { authorization: `Bearer ${t}` } });
    assert.equal(user.status, 401);
    const rec = sb.stats().persona!.revocations.at(-2)!;
    assert.deepEqual(rec, { method: 'DELETE', contentType: 'application/json', auth: 'basic', fields: ['access_token'], status: 204 });
  });
});

personaSuite('xero', (get) => {
  const token = 'https://identity.xero.com/connect/token';
  const refresh = (sb: Sandbox, rt: string) => call(sb.persona!.url(token), { form: { grant_type: 'refresh_token', refresh_token: rt }, headers: { authorization: basic } });
  let set: { access_token: string; refresh_token: string };
  let tenantId: string;

  test('code exchange with Basic; tenants from GET /connections; calls need Xero-tenant-id', async () => {
    const sb = get();
    const a = await authorize(sb, 'https://login.xero.com/identity/connect/authorize', { scope: 'openid accounting.transactions offline_access' });
    const r = await call(sb.persona!.url(token), { form: { grant_type: 'authorization_code', code: a.code, redirect_uri: redirectUri, code_verifier: a.verifier }, headers: { authorization: basic } });
    assert.equal(r.status, 200);
    assert.equal(r.body.expires_in, 1800);
    assert.equal(r.body.scope, 'openid accounting.transactions offline_access');
    set = r.body;
    const conns = await call(sb.persona!.url('https://api.xero.com/connections'), { headers: { authorization: `Bearer ${set.access_token}` } });
    assert.equal(conns.status, 200);
    assert.equal(conns.body[0].tenantType, 'ORGANISATION');
    tenantId = conns.body[0].tenantId;
    const invoices = (tenant?: string) =>
      call(sb.persona!.url('https://api.xero.com/api.xro/2.0/Invoices'), { headers: { authorization: `Bearer ${set.access_token}`, ...(tenant && { 'xero-tenant-id': tenant }) } });
    assert.equal((await invoices(tenantId)).status, 200);
    assert.equal((await invoices()).status, 403);
    const contacts = await call(sb.persona!.url('https://api.xero.com/api.xro/2.0/Contacts'), { headers: { authorization: `Bearer ${set.access_token}`, 'xero-tenant-id': tenantId } });
    assert.deepEqual([contacts.status, contacts.body.Detail], [403, 'AuthorizationUnsuccessful']);
  });

  test('refresh rotates; the previous refresh token still works within the 30-minute grace', async () => {
    const sb = get();
    const first = await refresh(sb, set.refresh_token);
    assert.equal(first.status, 200);
    assert.notEqual(first.body.refresh_token, set.refresh_token);
    const retry = await refresh(sb, set.refresh_token);
    assert.equal(retry.status, 200, 'grace');
    assert.equal(sb.stats().persona!.reuseDetected, 0);
    set = retry.body;
  });

  test('expired shape: 401 TokenExpired; upstream revocation: refresh invalid_grant; RFC 7009 revocation answers 200, 401 for a bad client', async () => {
    const sb = get();
    sb.persona!.expireNextApiCalls(1);
    const expired = await call(sb.persona!.url('https://api.xero.com/api.xro/2.0/Invoices'), { headers: { authorization: `Bearer ${set.access_token}`, 'xero-tenant-id': tenantId } });
    assert.equal(expired.status, 401);
    assert.match(expired.body.Detail, /^TokenExpired/);
    const revocation = sb.persona!.url('https://identity.xero.com/connect/revocation');
    assert.equal((await call(revocation, { form: { token: set.refresh_token }, headers: { authorization: `Basic ${Buffer.from('warrant-sandbox:nope').toString('base64')}` } })).status, 401);
    assert.equal((await call(revocation, { form: { token: set.refresh_token }, headers: { authorization: basic } })).status, 200);
    const after = await refresh(sb, set.refresh_token);
    assert.deepEqual([after.status, after.body.error], [400, 'invalid_grant']);
  });
});

personaSuite('atlassian', (get) => {
  const token = 'https://auth.atlassian.com/oauth/token';
  const refresh = (sb: Sandbox, rt: string) => call(sb.persona!.url(token), { json: { grant_type: 'refresh_token', refresh_token: rt, client_id: client.id, client_secret: client.secret } });
  let set: { access_token: string; refresh_token: string };

  test('authorize needs audience; the token endpoint takes JSON with the secret in it and refuses a form body', async () => {
    const sb = get();
    const q = new URLSearchParams({ response_type: 'code', client_id: client.id, redirect_uri: redirectUri, scope: 'read:jira-work', state: 's' });
    assert.equal(new URL(await sb.persona!.follow(`${sb.persona!.url('https://auth.atlassian.com/authorize')}?${q}`)).searchParams.get('error'), 'invalid_request');
    const a = await authorize(sb, 'https://auth.atlassian.com/authorize', { audience: 'api.atlassian.com', prompt: 'consent', scope: 'read:jira-work offline_access' });
    const exchange = { grant_type: 'authorization_code', code: a.code, redirect_uri: redirectUri, code_verifier: a.verifier, client_id: client.id, client_secret: client.secret };
    assert.equal((await call(sb.persona!.url(token), { form: exchange })).status, 400);
    const r = await call(sb.persona!.url(token), { json: exchange });
    assert.equal(r.status, 200);
    assert.equal(r.body.scope, 'read:jira-work offline_access');
    set = r.body;
  });

  test('accessible-resources gives the cloud id; the API lives under /ex/jira/{cloud id}; a missing scope is 401 "scope does not match"', async () => {
    const sb = get();
    const sites = await call(sb.persona!.url('https://api.atlassian.com/oauth/token/accessible-resources'), { headers: { authorization: `Bearer ${set.access_token}` } });
    const cloudId = sites.body[0].id as string;
    assert.match(cloudId, /^[0-9a-f-]{36}$/);
    assert.deepEqual(sites.body[0].scopes, ['read:jira-work', 'offline_access']);
    const jira = (path: string, cloud = cloudId) => call(sb.persona!.url(`https://api.atlassian.com/ex/jira/${cloud}${path}`), { headers: { authorization: `Bearer ${set.access_token}` } });
    assert.equal((await jira('/rest/api/3/issue/SBX-1')).status, 200);
    assert.equal((await jira('/rest/api/3/issue/SBX-1', '00000000-0000-4000-a000-000000000000')).status, 404);
    const missing = await jira('/rest/api/3/myself');
    assert.deepEqual([missing.status, missing.body.message], [401, 'Unauthorized; scope does not match']);
  });

  test('rotation with a 10-minute leeway; a rotated token reused outside it revokes the family (403 invalid_grant)', async () => {
    const sb = get();
    const next = await refresh(sb, set.refresh_token);
    assert.equal(next.status, 200);
    assert.equal((await refresh(sb, set.refresh_token)).status, 200, 'within the leeway');
    // Outside the leeway: revoke via the knob is the upstream case; reuse after revocation is invalid_grant.
    await sb.revokeGrantOf(next.body.access_token);
    const dead = await refresh(sb, next.body.refresh_token);
    assert.deepEqual([dead.status, dead.body.error], [403, 'invalid_grant']);
    const api = await call(sb.persona!.url('https://api.atlassian.com/oauth/token/accessible-resources'), { headers: { authorization: `Bearer ${next.body.access_token}` } });
    assert.equal(api.status, 401);
  });
});


// The other personas, table-driven: one grant each through exchange, API, expiry, refresh and revocation.
interface Spec {
  id: string;
  authorize: string;
  params: Record<string, string>;
  token: string;
  /** How the client speaks to the token endpoint. */
  send: 'form-post' | 'form-basic' | 'json-basic';
  headers?: Record<string, string>;
  answer(body: any, callback: URL): void;
  /** A call the grant allows, one it lacks the scope for (absent: no scopes to lack), with the persona's shapes. */
  ok: { method?: string; url: (tenant: string) => string; body?: unknown };
  missing?: { method?: string; url: (tenant: string) => string; body?: unknown; expect(r: Reply): void };
  expired(r: Reply): void;
  /** What a second use of the first refresh token gives after a refresh. */
  reuse: 'new' | 'same' | 'works' | 'invalid_grant';
  revoke?: { method?: string; url: string; send: 'form' | 'json' | 'query' | 'bearer'; field?: string; basic?: boolean; clientInBody?: boolean; ok: number; fail(r: Reply): void };
}

const specs: Spec[] = [
  {
    id: 'google',
    authorize: 'https://accounts.google.com/o/oauth2/v2/auth',
    params: { scope: 'https://www.googleapis.com/auth/gmail.readonly', access_type: 'offline', prompt: 'consent' },
    token: 'https://oauth2.googleapis.com/token',
    send: 'form-post',
    answer(body, callback) {
      assert.ok(callback.searchParams.get('iss')?.endsWith('/accounts.google.com'), 'Google sends iss');
      assert.equal(body.scope, 'https://www.googleapis.com/auth/gmail.readonly');
      assert.equal(body.expires_in, 3599);
    },
    ok: { url: () => 'https://gmail.googleapis.com/gmail/v1/users/me/profile' },
    missing: {
      method: 'POST',
      url: () => 'https://gmail.googleapis.com/gmail/v1/users/me/messages/send',
      body: {},
      expect(r) {
        assert.equal(r.status, 403);
        assert.equal(r.body.error.details[0].reason, 'ACCESS_TOKEN_SCOPE_INSUFFICIENT');
        assert.match(r.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
      },
    },
    expired(r) {
      assert.equal(r.status, 401);
      assert.match(r.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    },
    reuse: 'works',
    revoke: { url: 'https://oauth2.googleapis.com/revoke', send: 'query', ok: 200, fail: (r) => assert.deepEqual([r.status, r.body.error], [400, 'invalid_token']) },
  },
  {
    id: 'microsoft',
    authorize: 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize',
    params: { scope: 'User.Read Mail.Read offline_access' },
    token: 'https://login.microsoftonline.com/common/oauth2/v2.0/token',
    send: 'form-post',
    answer(body) {
      assert.equal(body.scope, 'https://graph.microsoft.com/user.read https://graph.microsoft.com/mail.read');
      assert.ok(body.ext_expires_in);
    },
    ok: { url: () => 'https://graph.microsoft.com/v1.0/me/messages' },
    missing: {
      method: 'POST',
      url: () => 'https://graph.microsoft.com/v1.0/me/sendMail',
      body: {},
      expect: (r) => assert.deepEqual([r.status, r.body.error.code], [403, 'ErrorAccessDenied']),
    },
    expired: (r) => assert.deepEqual([r.status, r.body.error.code], [401, 'InvalidAuthenticationToken']),
    reuse: 'works',
  },
  {
    id: 'salesforce',
    authorize: 'https://login.salesforce.com/services/oauth2/authorize',
    params: { scope: 'chatter_api refresh_token' },
    token: 'https://login.salesforce.com/services/oauth2/token',
    send: 'form-post',
    answer(body) {
      assert.equal(body.expires_in, undefined, 'no expires_in');
      assert.match(body.instance_url, /\/sandbox-org\.my\.salesforce\.com$/);
      assert.match(body.issued_at, /^\d{13}$/);
      assert.ok(body.signature && body.id);
    },
    ok: { url: () => 'https://sandbox-org.my.salesforce.com/services/data/v62.0/chatter/users/me' },
    missing: { url: () => 'https://sandbox-org.my.salesforce.com/services/data/v62.0/sobjects', expect: (r) => assert.equal(r.status, 403) },
    expired: (r) => assert.deepEqual([r.status, r.body[0].errorCode], [401, 'INVALID_SESSION_ID']),
    reuse: 'invalid_grant',
    revoke: { url: 'https://login.salesforce.com/services/oauth2/revoke', send: 'form', ok: 200, fail: (r) => assert.equal(r.status, 400) },
  },
  {
    id: 'notion',
    authorize: 'https://api.notion.com/v1/oauth/authorize',
    params: { owner: 'user' },
    token: 'https://api.notion.com/v1/oauth/token',
    send: 'json-basic',
    headers: { 'notion-version': '2026-03-11' },
    answer(body) {
      assert.equal(body.token_type, 'bearer');
      assert.ok(body.workspace_id && body.bot_id && body.refresh_token);
    },
    ok: { url: () => 'https://api.notion.com/v1/users/me' },
    expired: (r) => assert.deepEqual([r.status, r.body.object, r.body.code], [401, 'error', 'unauthorized']),
    reuse: 'invalid_grant',
    revoke: { url: 'https://api.notion.com/v1/oauth/revoke', send: 'json', basic: true, ok: 200, fail: (r) => assert.deepEqual([r.status, r.body.object], [401, 'error']) },
  },
  {
    id: 'linear',
    authorize: 'https://linear.app/oauth/authorize',
    params: { scope: 'read,issues:create' },
    token: 'https://api.linear.app/oauth/token',
    send: 'form-post',
    answer: (body) => assert.deepEqual([body.scope, body.expires_in], ['read issues:create', 86399]),
    ok: { method: 'POST', url: () => 'https://api.linear.app/graphql', body: { query: '{ viewer { id } }' } },
    expired: (r) => assert.equal(r.body.errors[0].extensions.code, 'AUTHENTICATION_ERROR'),
    reuse: 'invalid_grant',
    revoke: { url: 'https://api.linear.app/oauth/revoke', send: 'bearer', ok: 200, fail: (r) => assert.equal(r.status, 400) },
  },
  {
    id: 'freee',
    authorize: 'https://accounts.secure.freee.co.jp/public_api/authorize',
    params: { scope: 'read', prompt: 'select_company' },
    token: 'https://accounts.secure.freee.co.jp/public_api/token',
    send: 'form-post',
    answer: (body) => assert.deepEqual([typeof body.company_id, body.expires_in, body.scope], ['number', 21600, 'read']),
    ok: { url: () => 'https://api.freee.co.jp/api/1/deals' },
    missing: { method: 'POST', url: () => 'https://api.freee.co.jp/api/1/deals', body: {}, expect: (r) => assert.deepEqual([r.status, r.body.status_code], [403, 403]) },
    expired: (r) => assert.deepEqual([r.status, r.body.status_code], [401, 401]),
    reuse: 'invalid_grant',
    revoke: { url: 'https://accounts.secure.freee.co.jp/public_api/revoke', send: 'form', clientInBody: true, ok: 200, fail: (r) => assert.equal(r.status, 401) },
  },
  {
    id: 'hubspot',
    authorize: 'https://app.hubspot.com/oauth/authorize',
    params: { scope: 'oauth crm.objects.contacts.read' },
    token: 'https://api.hubapi.com/oauth/2026-03/token',
    send: 'form-post',
    answer: (body) => assert.deepEqual([body.token_type, body.expires_in], ['bearer', 1800]),
    ok: { url: () => 'https://api.hubapi.com/crm/v3/objects/contacts' },
    missing: {
      url: () => 'https://api.hubapi.com/crm/v3/objects/deals',
      expect(r) {
        assert.deepEqual([r.status, r.body.category], [403, 'MISSING_SCOPES']);
        assert.deepEqual(r.body.errors[0].context.requiredGranularScopes, ['crm.objects.deals.read', 'crm.objects.deals.write']);
      },
    },
    expired: (r) => assert.deepEqual([r.status, r.body.category], [401, 'EXPIRED_AUTHENTICATION']),
    reuse: 'same',
    revoke: { url: 'https://api.hubapi.com/oauth/2026-03/token/revoke', send: 'form', clientInBody: true, ok: 204, fail: (r) => assert.equal(r.status, 401) },
  },
  {
    id: 'quickbooks',
    authorize: 'https://appcenter.intuit.com/connect/oauth2',
    params: { scope: 'com.intuit.quickbooks.accounting' },
    token: 'https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer',
    send: 'form-basic',
    answer(body, callback) {
      assert.match(callback.searchParams.get('realmId') ?? '', /^\d+$/);
      assert.equal(body.x_refresh_token_expires_in, 8726400);
    },
    ok: { url: (realm) => `https://sandbox-quickbooks.api.intuit.com/v3/company/${realm}/companyinfo/${realm}` },
    expired: (r) => assert.deepEqual([r.status, r.body.Fault.type], [401, 'AUTHENTICATION']),
    reuse: 'same',
    revoke: { url: 'https://developer.api.intuit.com/v2/oauth2/tokens/revoke', send: 'json', basic: true, ok: 200, fail: (r) => assert.equal(r.status, 401) },
  },
];

for (const spec of specs) {
  personaSuite(spec.id, (get) => {
    test('exchange, answer shape, API allowed / missing scope / expired, refresh rule, revocation and its failure', async () => {
      const sb = get();
      const u = (real: string) => sb.persona!.url(real);
      const tokenCall = (params: Record<string, string>) => {
        const headers = { ...spec.headers, ...(spec.send !== 'form-post' && { authorization: basic }) };
        if (spec.send === 'json-basic') return call(u(spec.token), { json: params, headers });
        return call(u(spec.token), { form: spec.send === 'form-post' ? { ...params, client_id: client.id, client_secret: client.secret } : params, headers });
      };
      const a = await authorize(sb, spec.authorize, spec.params);
      const r = await tokenCall({ grant_type: 'authorization_code', code: a.code, redirect_uri: redirectUri, code_verifier: a.verifier });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      spec.answer(r.body, a.callback);
      const tenant = a.callback.searchParams.get('realmId') ?? '';
      const api = (c: { method?: string; url: (t: string) => string; body?: unknown }, t = r.body.access_token as string) =>
        call(u(c.url(tenant)), { method: c.method ?? 'GET', json: c.body, headers: { ...spec.headers, authorization: `Bearer ${t}` } });
      assert.equal((await api(spec.ok)).status, 200);
      if (spec.missing) spec.missing.expect(await api(spec.missing));
      sb.persona!.expireNextApiCalls(1);
      spec.expired(await api(spec.ok));

      const first = r.body.refresh_token as string;
      const refreshed = await tokenCall({ grant_type: 'refresh_token', refresh_token: first });
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
      assert.equal((await api(spec.ok, refreshed.body.access_token)).status, 200);
      const again = await tokenCall({ grant_type: 'refresh_token', refresh_token: first });
      if (spec.reuse === 'invalid_grant') assert.equal(again.body.error, 'invalid_grant');
      else {
        assert.equal(again.status, 200);
        if (spec.reuse === 'same') assert.equal(refreshed.body.refresh_token, first);
      }
      // Reuse may have revoked that grant (Salesforce): revocation is tried on a fresh one.
      const b = await authorize(sb, spec.authorize, spec.params);
      const fresh = (await tokenCall({ grant_type: 'authorization_code', code: b.code, redirect_uri: redirectUri, code_verifier: b.verifier })).body;
      const live = { access: fresh.access_token as string, refresh: fresh.refresh_token as string };

      if (!spec.revoke) return;
      const rv = spec.revoke;
      const token = rv.send === 'bearer' ? live.access : live.refresh;
      const revoke = (t: string, auth = basic) => {
        const headers: Record<string, string> = { ...spec.headers, ...(rv.basic && { authorization: auth }), ...(rv.send === 'bearer' && { authorization: `Bearer ${t}` }) };
        const extra: Record<string, string> = rv.clientInBody ? { client_id: client.id, client_secret: auth === basic ? client.secret : 'wrong' } : {};
        if (rv.send === 'query') return call(`${u(rv.url)}?token=${encodeURIComponent(t)}`, { method: 'POST', headers });
        if (rv.send === 'json') return call(u(rv.url), { json: { token: t }, headers });
        if (rv.send === 'form') return call(u(rv.url), { form: { token: t, ...extra }, headers });
        return call(u(rv.url), { method: 'POST', headers });
      };
      if (rv.basic || rv.clientInBody) rv.fail(await revoke(token, `Basic ${Buffer.from(`${client.id}:wrong`).toString('base64')}`));
      assert.equal((await revoke(token)).status, rv.ok);
      if (!rv.basic && !rv.clientInBody) rv.fail(await revoke(token));
      assert.equal((await tokenCall({ grant_type: 'refresh_token', refresh_token: live.refresh })).body.error, 'invalid_grant', 'the grant is gone');
      assert.notEqual((await api(spec.ok, live.access)).status, 200);
    });
  });
}

describe('persona definitions', () => {
  test('every persona prints a definition that loads with extends over its catalog entry, every URL on the sandbox', async () => {
    const { personas } = await import('../../src/sandbox/index.ts');
    const catalog = new Map(loadBuiltinProviders().map((p) => [p.id, p]));
    const dir = mkdtempSync(join(tmpdir(), 'warrant-persona-'));
    try {
      for (const [id, persona] of personas) {
        const sb = await startSandbox({ persona: id });
        try {
          for (const base of persona.catalog) {
            const def = sb.persona!.providerDefinition({ extends: base });
            assert.equal(def.extends, base);
            const file = join(dir, `${id}-${base}.json`);
            writeFileSync(file, JSON.stringify(def));
            const [loaded] = readProviderPath(file, catalog);
            assert.equal(loaded!.id, base);
            const origin = new URL(sb.issuer).origin;
            for (const env of Object.values(loaded!.environments)) {
              for (const value of [env.authorization_url, env.token_url, env.revocation_url, env.introspection_url, env.userinfo_url, env.issuer, env.api_base_url]) {
                if (value && !value.startsWith('{')) assert.ok(value.startsWith(`${origin}/`), `${id}/${base}: ${value} points at the sandbox`);
              }
            }
            if (loaded!.tenant_discovery) assert.ok(loaded!.tenant_discovery.url.startsWith(`${origin}/`));
          }
        } finally {
          await sb.close();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('warrant sandbox --persona slack prints a definition extending slack that loads', async () => {
    const p = runWarrant(['sandbox', '--port', '0', '--persona', 'slack'], {});
    try {
      await p.waitFor(/^# Persona slack/m, 20_000);
      const deadline = Date.now() + 10_000;
      let def: any;
      for (;;) {
        try {
          def = parseYaml(p.stdout().split('\n').filter((l) => !l.startsWith('#')).join('\n'));
          if (def?.environments?.production?.api_base_url) break;
        } catch {
          /* still arriving */
        }
        if (Date.now() > deadline) assert.fail(`no definition: ${p.stdout()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(def.extends, 'slack');
      assert.equal(def.id, 'slack');
      const dir = mkdtempSync(join(tmpdir(), 'warrant-persona-'));
      try {
        writeFileSync(join(dir, 'slack.yaml'), p.stdout());
        const catalog = new Map(loadBuiltinProviders().map((x) => [x.id, x]));
        const [loaded] = readProviderPath(join(dir, 'slack.yaml'), catalog);
        assert.equal(loaded!.environments['production']!.token_url, def.environments.production.token_url);
        assert.equal(loaded!.scope_separator, ',', 'inherited from the catalog');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      const ok = await call(def.environments.production.token_url, { form: { grant_type: 'refresh_token', refresh_token: 'nope' }, headers: { authorization: basic } });
      assert.deepEqual(ok.body, { ok: false, error: 'invalid_refresh_token' });
      assert.equal(await p.kill('SIGTERM'), 0);
    } finally {
      await p.kill('SIGKILL');
    }
  });
});
