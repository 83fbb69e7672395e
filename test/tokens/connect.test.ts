import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';

describe('connect: authorization code + PKCE through the sandbox IdP', () => {
  let env: LifecycleEnv;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 60 } });
  });
  after(async () => env?.cleanup());

  async function startSession(body: Record<string, unknown>) {
    const res = await env.warrant.app.inject({ method: 'POST', url: '/v1/connect-sessions', headers: admin, payload: body });
    assert.equal(res.statusCode, 201, res.body);
    return res.json() as { id: string; authorize_url: string; expires_at: string };
  }

  test('a connect session yields an authorize URL with PKCE S256, state, offline access and the exact callback', async () => {
    const s = await startSession({ provider: 'sandbox', owner: 'alice@example.com', scopes: ['items:read'] });
    const url = new URL(s.authorize_url);
    assert.equal(url.origin + url.pathname, `${env.sandbox.issuer}/auth`);
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.match(url.searchParams.get('code_challenge')!, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(url.searchParams.get('state')!.length >= 32);
    assert.equal(url.searchParams.get('redirect_uri'), `${env.warrant.config.publicUrl}/oauth/callback`);
    assert.deepEqual(url.searchParams.get('scope')!.split(' ').sort(), ['items:read', 'offline_access']);
    assert.ok(Date.parse(s.expires_at) - Date.now() > 9 * 60_000);
  });

  test('the callback exchanges the code, creates the connection, and the state works only once', async () => {
    const s = await startSession({ provider: 'sandbox', owner: 'alice@example.com', scopes: ['items:read', 'items:write'] });
    const redirect = new URL(await env.sandbox.authorize(Object.fromEntries(new URL(s.authorize_url).searchParams) as never));
    const cb = await env.warrant.app.inject({ url: `/oauth/callback${redirect.search}` });
    assert.equal(cb.statusCode, 200);
    assert.match(cb.headers['content-type'] as string, /text\/html/);
    assert.match(cb.body, /Connected/);

    const session = (await env.warrant.app.inject({ url: `/v1/connect-sessions/${s.id}`, headers: admin })).json();
    assert.equal(session.status, 'completed');
    assert.match(session.connection_id, /^con_/);
    const conn = (await env.warrant.app.inject({ url: `/v1/connections/${session.connection_id}`, headers: admin })).json();
    assert.equal(conn.status, 'active');
    assert.equal(conn.owner, 'alice@example.com');
    assert.deepEqual(conn.scopes.sort(), ['items:read', 'items:write', 'offline_access']);
    assert.ok(Date.parse(conn.expires_at) > Date.now() + 50_000);
    assert.ok(!JSON.stringify(conn).match(/access_token|refresh_token/));

    const replay = await env.warrant.app.inject({ url: `/oauth/callback${redirect.search}` });
    assert.equal(replay.statusCode, 400);
    assert.equal(replay.json().code, 'invalid_request');
    assert.equal(replay.json().field, 'query.state');
  });

  test('fewer scopes granted than asked are recorded and reported, not hidden', async () => {
    const s = await startSession({ provider: 'sandbox', owner: 'bob@example.com', scopes: ['items:read', 'items:admin'] });
    const redirect = new URL(await env.sandbox.authorize(Object.fromEntries(new URL(s.authorize_url).searchParams) as never));
    const cb = await env.warrant.app.inject({ url: `/oauth/callback${redirect.search}` });
    assert.match(cb.body, /missing items:admin/);
    const session = (await env.warrant.app.inject({ url: `/v1/connect-sessions/${s.id}`, headers: admin })).json();
    const conn = (await env.warrant.app.inject({ url: `/v1/connections/${session.connection_id}`, headers: admin })).json();
    assert.deepEqual(conn.missing_scopes, ['items:admin']);
    assert.ok(!conn.scopes.includes('items:admin'));
    const audit = await env.warrant.audit.query({ type: 'connection.created', subject: `connection:${conn.id}` });
    assert.deepEqual(audit[0]?.data.missing_scopes, ['items:admin']);
  });

  test('an IdP error on the callback fails the session; redirect_to receives the outcome', async () => {
    const s = await startSession({ provider: 'sandbox', owner: 'carol@example.com', scopes: ['items:read'], redirect_to: 'https://app.example.com/done' });
    const state = new URL(s.authorize_url).searchParams.get('state')!;
    const cb = await env.warrant.app.inject({ url: `/oauth/callback?error=access_denied&state=${state}` });
    assert.equal(cb.statusCode, 303);
    const to = new URL(cb.headers.location as string);
    assert.equal(to.origin, 'https://app.example.com');
    assert.equal(to.searchParams.get('status'), 'failed');
    assert.equal(to.searchParams.get('error'), 'access_denied');
    const session = (await env.warrant.app.inject({ url: `/v1/connect-sessions/${s.id}`, headers: admin })).json();
    assert.equal(session.status, 'failed');
  });

  test('a tampered code is refused at the exchange and the session fails', async () => {
    const s = await startSession({ provider: 'sandbox', owner: 'dave@example.com', scopes: ['items:read'] });
    const redirect = new URL(await env.sandbox.authorize(Object.fromEntries(new URL(s.authorize_url).searchParams) as never));
    redirect.searchParams.set('code', 'not-the-code');
    const cb = await env.warrant.app.inject({ url: `/oauth/callback${redirect.search}` });
    assert.equal(cb.statusCode, 400);
    const session = (await env.warrant.app.inject({ url: `/v1/connect-sessions/${s.id}`, headers: admin })).json();
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
