import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';

// Mix-up defence (RFC 9700 §4.4, RFC 9207): each provider has its own callback path, a response
// is accepted only at the path its session's request named, and an `iss` that is not the
// provider's issuer (or missing where the provider always sends one) fails the session before
// its code goes anywhere. Before this, every provider shared /oauth/callback and `iss` was dropped
// for any entry without an issuer, so a response could be taken for another provider's.

describe('mix-up defence: a callback path per provider, and the authorization response iss', () => {
  let env: LifecycleEnv;
  let idp: Sandbox;
  let other: Sandbox;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

  before(async () => {
    idp = await startSandbox({ accessTokenTtl: 60 });
    // A second, unrelated authorization server knowing the same client id: what a mix-up attacker
    // (or an honest IdP the request was diverted to) looks like.
    other = await startSandbox({ accessTokenTtl: 60 });
    env = await startLifecycle({
      sharedSandbox: idp,
      env: { WARRANT_REDIRECT_PER_PROVIDER: '1' },
      providers: [
        { extends: 'sandbox', id: 'sandbox-b' },
        // The sandbox (oidc-provider) always sends iss: declared, a response without it is refused.
        { extends: 'sandbox', id: 'sandbox-iss', authorization_response_iss_parameter_supported: true },
        // A registration that cannot change keeps the shared path.
        { extends: 'sandbox', id: 'sandbox-legacy', redirect_path: '/oauth/callback' },
        // An issuer with a typed placeholder, filled from the session's params (Okta's https://{okta_domain}).
        {
          extends: 'sandbox',
          id: 'sandbox-tpl',
          connection_params: { idp_path: { from: 'connection', type: 'path_segment' } },
          environments: { production: { issuer: `${new URL(idp.issuer).origin}/{idp_path}` } },
        },
      ],
    });
  });
  after(async () => {
    await env?.cleanup();
    await idp?.close();
    await other?.close();
  });

  /** A session opened as a browser: the IdP URL it was sent to and its cookie. */
  async function opened(provider: string, params?: Record<string, string>) {
    const res = await env.warrant.app.inject({ method: 'POST', url: '/v1/connect-sessions', headers: admin, payload: { provider, owner: 'mia@example.com', scopes: ['items:read'], ...(params ? { params } : {}) } });
    assert.equal(res.statusCode, 201, res.body);
    const s = res.json() as { id: string; authorize_url: string };
    const u = new URL(s.authorize_url);
    const start = await env.warrant.app.inject({ url: u.pathname + u.search });
    assert.equal(start.statusCode, 302, start.body);
    return { id: s.id, idp: new URL(start.headers.location as string), cookie: String([start.headers['set-cookie']].flat()[0]).split(';')[0]! };
  }
  const consentAt = async (idp: Sandbox, url: URL) => new URL(await idp.authorize(Object.fromEntries(url.searchParams) as never));
  const deliver = (path: string, search: string, cookie: string) => env.warrant.app.inject({ url: `${path}${search}`, headers: { cookie } });
  const session = async (id: string) => (await env.warrant.app.inject({ url: `/v1/connect-sessions/${id}`, headers: admin })).json();
  const codeExchanges = () => env.sandbox.stats().authorizationCodeRequests + other.stats().authorizationCodeRequests;

  test('round trip: the authorization request names the provider’s own callback, the IdP returns there, and the token request repeats it', async () => {
    const publicUrl = env.warrant.config.publicUrl;
    for (const provider of ['sandbox', 'sandbox-b']) {
      const s = await opened(provider);
      assert.equal(s.idp.searchParams.get('redirect_uri'), `${publicUrl}/oauth/callback/${provider}`);
      const back = await consentAt(env.sandbox, s.idp);
      assert.equal(back.pathname, `/oauth/callback/${provider}`);
      assert.ok(back.searchParams.get('iss'), 'the sandbox sends iss (RFC 9207)');
      const cb = await deliver(back.pathname, back.search, s.cookie);
      // oidc-provider refuses a token request whose redirect_uri differs from the authorization request's.
      assert.equal(cb.statusCode, 200, cb.body);
      assert.equal((await session(s.id)).status, 'completed');
    }
    // The test helper drives the same flow in-process, delivering where the IdP sent it.
    assert.match(await env.connectTo('sandbox-b'), /^con_/);
    assert.match(await env.connectTo('sandbox-iss'), /^con_/);
  });

  test("a response delivered to another provider's callback path is refused, the session fails and its code is never exchanged", async () => {
    for (const wrongPath of ['/oauth/callback/sandbox-b', '/oauth/callback']) {
      const s = await opened('sandbox');
      const back = await consentAt(env.sandbox, s.idp);
      const before = codeExchanges();
      const connections = (await env.warrant.connections.list({})).length;
      const cb = await deliver(wrongPath, back.search, s.cookie);
      assert.equal(cb.statusCode, 400, `${wrongPath}: ${cb.body}`);
      assert.match(cb.body, /callback_mismatch/);
      assert.match(cb.body, /another provider&#39;s callback address/);
      const failed = await session(s.id);
      assert.equal(failed.status, 'failed');
      assert.equal(failed.error, 'callback_mismatch');
      assert.equal(codeExchanges(), before, 'the code was exchanged');
      assert.equal((await env.warrant.connections.list({})).length, connections);
      // The flow is over: the same answer at the right path is refused too.
      const late = await deliver(back.pathname, back.search, s.cookie);
      assert.equal(late.statusCode, 400);
      assert.equal(late.json().field, 'query.state');
    }
    assert.ok(env.logs.lines.some((l) => /another provider's callback/.test(l)));
  });

  test('an iss that is not the provider’s issuer fails the session: a request diverted to another authorization server', async () => {
    const s = await opened('sandbox');
    // The browser went to the other IdP with this session's request; it answers at the
    // sandbox provider's own callback, with its own code and its own iss.
    const back = await consentAt(other, s.idp);
    assert.equal(back.pathname, '/oauth/callback/sandbox');
    assert.equal(back.searchParams.get('iss'), other.issuer);
    const before = codeExchanges();
    const cb = await deliver(back.pathname, back.search, s.cookie);
    assert.equal(cb.statusCode, 400, cb.body);
    assert.match(cb.body, /issuer_mismatch/);
    assert.match(cb.body, /names another authorization server/);
    const failed = await session(s.id);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error, 'issuer_mismatch');
    assert.equal(codeExchanges(), before, 'a code was sent to a token endpoint');
    assert.ok(env.logs.lines.some((l) => l.includes('refused by the RFC 9207 iss check') && l.includes('issuer_mismatch')));
    assert.ok(!env.logs.lines.some((l) => l.includes(back.searchParams.get('code')!)), 'the code is never logged');
  });

  test('iss is required where the provider declares authorization_response_iss_parameter_supported; optional elsewhere', async () => {
    const strict = await opened('sandbox-iss');
    const back = await consentAt(env.sandbox, strict.idp);
    back.searchParams.delete('iss');
    const cb = await deliver(back.pathname, back.search, strict.cookie);
    assert.equal(cb.statusCode, 400, cb.body);
    assert.match(cb.body, /issuer_missing/);
    assert.equal((await session(strict.id)).error, 'issuer_missing');

    // RFC 9207 §2.4: a provider that does not say it always sends iss may leave it out.
    const lenient = await opened('sandbox');
    const plain = await consentAt(env.sandbox, lenient.idp);
    plain.searchParams.delete('iss');
    assert.equal((await deliver(plain.pathname, plain.search, lenient.cookie)).statusCode, 200);
  });

  test('an issuer with a placeholder is compared once filled with the session’s checked value', async () => {
    const good = await opened('sandbox-tpl', { idp_path: 'oauth' });
    const ok = await consentAt(env.sandbox, good.idp);
    assert.equal((await deliver(ok.pathname, ok.search, good.cookie)).statusCode, 200);

    const wrong = await opened('sandbox-tpl', { idp_path: 'elsewhere' });
    const back = await consentAt(env.sandbox, wrong.idp);
    const cb = await deliver(back.pathname, back.search, wrong.cookie);
    assert.equal(cb.statusCode, 400);
    assert.equal((await session(wrong.id)).error, 'issuer_mismatch');
  });

  test('redirect_path: /oauth/callback keeps the shared callback for that provider only', async () => {
    const s = await opened('sandbox-legacy');
    assert.equal(s.idp.searchParams.get('redirect_uri'), `${env.warrant.config.publicUrl}/oauth/callback`);
    const back = await consentAt(env.sandbox, s.idp);
    assert.equal(back.pathname, '/oauth/callback');
    assert.equal((await deliver(back.pathname, back.search, s.cookie)).statusCode, 200);

    const t = await opened('sandbox-legacy');
    const again = await consentAt(env.sandbox, t.idp);
    assert.equal((await deliver('/oauth/callback/sandbox-legacy', again.search, t.cookie)).statusCode, 400);
    assert.equal((await session(t.id)).error, 'callback_mismatch');
  });

  test('a session opened before per-provider paths (its request named /oauth/callback) still completes there', async () => {
    const s = await opened('sandbox');
    // What an older Warrant did on open: the shared callback in the request, nothing recorded.
    const legacy = `${env.warrant.config.publicUrl}/oauth/callback`;
    s.idp.searchParams.set('redirect_uri', legacy);
    await env.warrant.store.vault.delete({ scope: 'connect_session', ref: s.id, field: 'redirect_uri' });
    const back = await consentAt(env.sandbox, s.idp);
    assert.equal(back.pathname, '/oauth/callback');
    const cb = await deliver(back.pathname, back.search, s.cookie);
    assert.equal(cb.statusCode, 200, cb.body);
    assert.equal((await session(s.id)).status, 'completed');
  });
});
