import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';

describe('connect: authorization code + PKCE through the sandbox IdP, bound to one browser', () => {
  let env: LifecycleEnv;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  before(async () => {
    // sandbox-wide knows a scope the sandbox IdP never grants (as an app not approved for one).
    env = await startLifecycle({ sandbox: { accessTokenTtl: 60 }, providers: [{ extends: 'sandbox', id: 'sandbox-wide', scopes: { 'items:admin': [{ method: 'DELETE', path: '/admin/**' }] } }] });
  });
  after(async () => env?.cleanup());

  async function startSession(body: Record<string, unknown>) {
    const res = await env.warrant.app.inject({ method: 'POST', url: '/v1/connect-sessions', headers: admin, payload: body });
    assert.equal(res.statusCode, 201, res.body);
    return res.json() as { id: string; authorize_url: string; connect_url: string; expires_at: string };
  }

  /** Opens a Warrant start URL as a browser: the IdP URL it redirects to and the cookie it sets. */
  async function open(url: string) {
    const u = new URL(url);
    const res = await env.warrant.app.inject({ url: u.pathname + u.search });
    const setCookie = [res.headers['set-cookie'] ?? []].flat()[0] ?? '';
    return { res, idp: res.statusCode === 302 ? new URL(res.headers.location as string) : undefined, setCookie, cookie: setCookie.split(';')[0]! };
  }

  const consent = async (idp: URL, extra: Record<string, string> = {}) =>
    new URL(await env.sandbox.authorize({ ...Object.fromEntries(idp.searchParams), ...extra } as never));

  const callback = (search: string, cookie?: string) => env.warrant.app.inject({ url: `/oauth/callback${search}`, headers: cookie ? { cookie } : {} });
  const sessionOf = async (id: string) => (await env.warrant.app.inject({ url: `/v1/connect-sessions/${id}`, headers: admin })).json();

  test('a session answers a Warrant start URL; its open sets an HttpOnly SameSite=Lax cookie and redirects to the IdP with PKCE S256, state and the exact callback', async () => {
    const s = await startSession({ provider: 'sandbox', owner: 'alice@example.com', scopes: ['items:read'] });
    assert.equal(new URL(s.authorize_url).origin, env.warrant.config.publicUrl);
    assert.match(new URL(s.authorize_url).pathname, new RegExp(`^/connect/${s.id}$`));
    // connect_url is the hosted page for the owner (test/http/connect-page.test.ts), on the same token.
    assert.equal(s.connect_url, s.authorize_url.replace(`/connect/${s.id}?`, `/connect/${s.id}/review?`));
    assert.ok(Date.parse(s.expires_at) - Date.now() > 9 * 60_000);
    const { res, idp, setCookie } = await open(s.authorize_url);
    assert.equal(res.statusCode, 302);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.match(setCookie, new RegExp(`^warrant_connect_${s.id}=[A-Za-z0-9_-]{43};`));
    assert.match(setCookie, /; HttpOnly/);
    assert.match(setCookie, /; SameSite=Lax/);
    assert.doesNotMatch(setCookie, /Secure/, 'plain http on loopback: a Secure cookie would never come back');
    assert.equal(idp!.origin + idp!.pathname, `${env.sandbox.issuer}/auth`);
    assert.equal(idp!.searchParams.get('code_challenge_method'), 'S256');
    assert.match(idp!.searchParams.get('code_challenge')!, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(idp!.searchParams.get('state')!.length >= 32);
    assert.equal(idp!.searchParams.get('redirect_uri'), `${env.warrant.config.publicUrl}/oauth/callback`);
    assert.deepEqual(idp!.searchParams.get('scope')!.split(' ').sort(), ['items:read', 'offline_access']);
  });

  test('the callback exchanges the code, creates the connection, and the state works only once', async () => {
    const s = await startSession({ provider: 'sandbox', owner: 'alice@example.com', scopes: ['items:read', 'items:write'] });
    const { idp, cookie } = await open(s.authorize_url);
    const redirect = await consent(idp!);
    const cb = await callback(redirect.search, cookie);
    assert.equal(cb.statusCode, 200, cb.body);
    assert.match(cb.headers['content-type'] as string, /text\/html/);
    assert.match(cb.body, /Connected/);
    assert.match(String(cb.headers['set-cookie']), /Max-Age=0/, 'the binding cookie is cleared');

    const session = await sessionOf(s.id);
    assert.equal(session.status, 'completed');
    assert.match(session.connection_id, /^con_/);
    const conn = (await env.warrant.app.inject({ url: `/v1/connections/${session.connection_id}`, headers: admin })).json();
    assert.equal(conn.status, 'active');
    assert.equal(conn.owner, 'alice@example.com');
    assert.deepEqual(conn.scopes.sort(), ['items:read', 'items:write', 'offline_access']);
    assert.ok(Date.parse(conn.expires_at) > Date.now() + 50_000);
    assert.ok(!JSON.stringify(conn).match(/access_token|refresh_token/));

    const replay = await callback(redirect.search, cookie);
    assert.equal(replay.statusCode, 400);
    assert.equal(replay.json().code, 'invalid_request');
    assert.equal(replay.json().field, 'query.state');
  });

  test('a start URL opens once: a second open, in any browser, is refused', async () => {
    // Regression: authorize_url pointed straight at the IdP; anyone holding it could consent.
    const s = await startSession({ provider: 'sandbox', owner: 'erin@example.com', scopes: ['items:read'] });
    const first = await open(s.authorize_url);
    assert.equal(first.res.statusCode, 302);
    const second = await open(s.authorize_url);
    assert.equal(second.res.statusCode, 400);
    assert.equal(second.res.json().code, 'invalid_request');
    assert.equal(second.res.headers['set-cookie'], undefined);
    const forged = await open(s.authorize_url.replace(/t=[^&]+/, 't=AAAA'));
    assert.equal(forged.res.statusCode, 400);
  });

  test('opened in browser A, completed in browser B (no cookie, or another cookie): refused, and A can still complete', async () => {
    // Regression: the callback accepted any browser that carried the code and state.
    const s = await startSession({ provider: 'sandbox', owner: 'frank@example.com', scopes: ['items:read'] });
    const a = await open(s.authorize_url);
    const redirect = await consent(a.idp!);
    const other = await startSession({ provider: 'sandbox', owner: 'frank@example.com', scopes: ['items:read'] });
    const b = await open(other.authorize_url);
    for (const cookie of [undefined, b.cookie, `warrant_connect_${s.id}=${'A'.repeat(43)}`]) {
      const cb = await callback(redirect.search, cookie);
      assert.equal(cb.statusCode, 400, String(cookie));
      assert.equal(cb.json().code, 'invalid_request');
      assert.equal(cb.json().field, 'cookie');
    }
    assert.equal((await sessionOf(s.id)).status, 'pending', 'a refused browser does not burn the session');
    const ok = await callback(redirect.search, a.cookie);
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal((await sessionOf(s.id)).status, 'completed');
  });

  test('fewer scopes granted than asked are recorded and reported, not hidden', async () => {
    const s = await startSession({ provider: 'sandbox-wide', owner: 'bob@example.com', scopes: ['items:read', 'items:admin'] });
    const { idp, cookie } = await open(s.authorize_url);
    const cb = await callback((await consent(idp!)).search, cookie);
    assert.match(cb.body, /missing items:admin/);
    const session = await sessionOf(s.id);
    const conn = (await env.warrant.app.inject({ url: `/v1/connections/${session.connection_id}`, headers: admin })).json();
    assert.deepEqual(conn.missing_scopes, ['items:admin']);
    assert.ok(!conn.scopes.includes('items:admin'));
    const audit = await env.warrant.audit.query({ type: 'connection.created', subject: `connection:${conn.id}` });
    assert.deepEqual(audit[0]?.data.missing_scopes, ['items:admin']);
  });

  test('an IdP error on the callback fails the session; redirect_to receives the outcome', async () => {
    const s = await startSession({ provider: 'sandbox', owner: 'carol@example.com', scopes: ['items:read'], redirect_to: 'https://app.example.com/done' });
    const { idp, cookie } = await open(s.authorize_url);
    const cb = await callback(`?error=access_denied&state=${idp!.searchParams.get('state')}`, cookie);
    assert.equal(cb.statusCode, 303);
    const to = new URL(cb.headers.location as string);
    assert.equal(to.origin, 'https://app.example.com');
    assert.equal(to.searchParams.get('status'), 'failed');
    assert.equal(to.searchParams.get('error'), 'access_denied');
    assert.equal((await sessionOf(s.id)).status, 'failed');
  });

  test('a tampered code is refused at the exchange and the session fails', async () => {
    const s = await startSession({ provider: 'sandbox', owner: 'dave@example.com', scopes: ['items:read'] });
    const { idp, cookie } = await open(s.authorize_url);
    const redirect = await consent(idp!);
    redirect.searchParams.set('code', 'not-the-code');
    const cb = await callback(redirect.search, cookie);
    assert.equal(cb.statusCode, 400);
    const session = await sessionOf(s.id);
    assert.equal(session.status, 'failed');
    assert.equal(session.error, 'invalid_grant');
  });

  test('unknown provider and bad input are invalid_request naming the field', async () => {
    const bad = await env.warrant.app.inject({ method: 'POST', url: '/v1/connect-sessions', headers: admin, payload: { provider: 'nope', owner: 'a', scopes: [] } });
    assert.equal(bad.json().field, 'provider');
    const missing = await env.warrant.app.inject({ method: 'POST', url: '/v1/connect-sessions', headers: admin, payload: { provider: 'sandbox', scopes: [] } });
    assert.equal(missing.statusCode, 400);
    assert.equal(missing.json().field, 'body.owner');
  });
});
