import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { uiClient } from './ui.ts';
import { registeredRoutes } from '../../src/http/app.ts';

// The dashboard at /ui against a real Warrant and the sandbox: sign-in, the session cookie, CSRF,
// roles as the admin API enforces them, escaping, one-time secrets, revocation, redelivery.

describe('dashboard', () => {
  let env: LifecycleEnv;
  let receiver: Receiver;
  let connection: string;
  let origin: string;
  const admin = async (method: 'GET' | 'POST' | 'DELETE' | 'PATCH', url: string, body?: unknown, token = ADMIN_TOKEN) =>
    env.warrant.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body as object }) });
  const adminKey = async (role: string) => (await admin('POST', '/v1/admin-keys', { name: `ui ${role}`, role })).json() as { id: string; api_key: string };
  const client = () => uiClient(env.warrant.app, origin);

  before(async () => {
    env = await startLifecycle({ env: { WARRANT_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.0/8' } });
    origin = new URL(env.warrant.config.publicUrl).origin;
    receiver = await startReceiver();
    connection = await env.connect('alice@example.com');
  });
  after(async () => {
    await env?.cleanup();
    await receiver?.close();
  });

  test('GET / leads to /ui, and /ui to the sign-in page; every answer carries the CSP, no-store and a same-origin referrer policy', async () => {
    const root = await env.warrant.app.inject({ method: 'GET', url: '/' });
    assert.equal(root.statusCode, 302);
    assert.equal(root.headers.location, '/ui');
    const ui = await client().get('/ui');
    assert.equal(ui.status, 303);
    assert.equal(ui.location, '/ui/login');
    const login = await client().get('/ui/login');
    assert.equal(login.status, 200);
    assert.equal(login.headers['content-security-policy'], "default-src 'self'; frame-ancestors 'none'");
    assert.equal(login.headers['cache-control'], 'no-store');
    assert.equal(login.headers['referrer-policy'], 'same-origin');
    assert.match(login.body, /<label for="credential">/);
    assert.doesNotMatch(login.body, /<script>|style=/, 'no inline script or style: the CSP would refuse them');
  });

  test('every /ui page and form wants a session: without one, or with a forged cookie, it leads to the sign-in page and does nothing', async () => {
    const open = new Set(['/ui/login', '/ui/logout', '/ui/static/ui.css', '/ui/static/ui.js']);
    const routes = registeredRoutes(env.warrant.app).filter((r) => r.url.startsWith('/ui') && !open.has(r.url) && r.method !== 'HEAD');
    assert.ok(routes.length >= 15, `${routes.length} routes`);
    for (const { method, url } of routes) {
      const path = url.replace(/:[a-z]+/g, 'x');
      for (const cookie of [undefined, 'warrant_ui=v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']) {
        const res = await env.warrant.app.inject({ method: method as 'GET', url: path, headers: cookie ? { cookie } : {}, ...(method === 'POST' ? { payload: 'confirm=yes', headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}) } } : {}) });
        assert.equal(res.statusCode, 303, `${method} ${url}`);
        assert.match(String(res.headers.location), /^\/ui\/login/, `${method} ${url}`);
      }
    }
  });

  test('sign-in: a wrong credential is refused without a cookie; the admin token gets a sealed, HttpOnly, SameSite=Strict cookie on /ui', async () => {
    const c = client();
    const bad = await c.signIn('not-the-admin-token-0123456789');
    assert.equal(bad.status, 401);
    assert.equal(bad.headers['set-cookie'], undefined);
    assert.match(bad.body, /admin_unauthenticated/);
    assert.doesNotMatch(bad.body, /not-the-admin-token/, 'the credential is never echoed');

    const good = await c.signIn(ADMIN_TOKEN);
    assert.equal(good.status, 303);
    const cookie = String(good.headers['set-cookie']);
    assert.match(cookie, /^warrant_ui=v1\.[A-Za-z0-9_-]+; Path=\/ui; Max-Age=28800; HttpOnly; SameSite=Strict$/);
    assert.ok(!cookie.includes(ADMIN_TOKEN), 'the credential is sealed, not readable in the cookie');
    const page = await c.get('/ui/connections');
    assert.equal(page.status, 200);
    assert.match(page.body, /Signed in as <strong>admin<\/strong>, role <strong>admin<\/strong>/);
    assert.match(page.body, /Warrant <span class="muted">\d+\.\d+\.\d+/);
    assert.match(page.body, new RegExp(`<a href="/ui/connections/${connection}">`));
    assert.ok(!page.body.includes(ADMIN_TOKEN));

    // A cookie changed by one character does not open (one in the middle: every bit of it counts).
    const tampered = client();
    const at = 'warrant_ui=v1.'.length + 20;
    tampered.cookie = c.cookie!.slice(0, at) + (c.cookie![at] === 'A' ? 'g' : 'A') + c.cookie!.slice(at + 1);
    const refused = await tampered.get('/ui/connections');
    assert.equal(refused.status, 303);
    assert.match(refused.location!, /^\/ui\/login/);

    const out = await c.submit('/ui/connections', '/ui/logout');
    assert.equal(out.status, 303);
    assert.match(String(out.headers['set-cookie']), /^warrant_ui=; Path=\/ui; Max-Age=0;/);
    assert.equal((await c.get('/ui/connections')).status, 303);
  });

  test('CSRF: a form without the token, with another session’s token, or from another origin is refused and changes nothing', async () => {
    const c = client();
    await c.signIn(ADMIN_TOKEN);
    const other = client();
    await other.signIn(ADMIN_TOKEN);
    const otherToken = other.csrfOf((await other.get('/ui/connections')).body)!;
    const own = c.csrfOf((await c.get('/ui/connections')).body)!;
    const agent = (await admin('POST', '/v1/agents', { name: 'csrf', owner: 'alice@example.com', grants: [{ connection, scopes: ['items:read'] }] })).json();
    const url = `/ui/agents/${agent.id}/revoke`;

    const none = await c.post('POST', url, { confirm: 'yes' });
    assert.equal(none.status, 403);
    assert.match(none.body, /Form refused/);
    const foreign = await c.post('POST', url, { confirm: 'yes', _csrf: otherToken });
    assert.equal(foreign.status, 403);
    const cross = await c.post('POST', url, { confirm: 'yes', _csrf: own }, { origin: 'https://evil.example' });
    assert.equal(cross.status, 403);
    assert.match(cross.body, /Cross-origin form refused/);
    assert.equal((await admin('GET', `/v1/agents/${agent.id}`)).json().status, 'active');

    const ok = await c.post('POST', url, { confirm: 'yes', _csrf: own });
    assert.equal(ok.status, 200);
    assert.equal((await admin('GET', `/v1/agents/${agent.id}`)).json().status, 'revoked');
  });

  test('roles are the API’s: a read key sees the pages, and its revoke shows the 403 admin_forbidden problem', async () => {
    const key = await adminKey('read');
    const c = client();
    assert.equal((await c.signIn(key.api_key)).status, 303);
    const list = await c.get('/ui/connections');
    assert.match(list.body, new RegExp(`role <strong>read</strong>`));
    assert.match(list.body, new RegExp(`admin_key:${key.id}`));
    assert.ok(!list.body.includes(key.api_key));
    const refused = await c.submit('/ui/connections', `/ui/connections/${connection}/revoke`, { confirm: 'yes' });
    assert.equal(refused.status, 403);
    assert.match(refused.body, /admin_forbidden/);
    assert.match(refused.body, /Role needed: <strong>operate<\/strong>; yours: <strong>read<\/strong>/);
    assert.equal((await admin('GET', `/v1/connections/${connection}`)).json().status, 'active');
  });

  test('a revoked admin key stops working on the next page, although its cookie is still sealed and unexpired', async () => {
    const key = await adminKey('operate');
    const c = client();
    await c.signIn(key.api_key);
    assert.equal((await c.get('/ui/agents')).status, 200);
    assert.equal((await admin('DELETE', `/v1/admin-keys/${key.id}`)).statusCode, 200);
    const after = await c.get('/ui/agents');
    assert.equal(after.status, 303);
    assert.equal(after.location, '/ui/login?ended=1');
  });

  test('escaping: an owner with <script> renders as text on the list and the detail page', async () => {
    const owner = '<script>alert("x")</script>@example.com';
    const imported = await admin('POST', '/v1/connections', { provider: 'sandbox', owner, access_token: 'imported-access-token-xyz', expires_in: 3600, scopes: ['items:read'] });
    assert.equal(imported.statusCode, 201, imported.body);
    const id = imported.json().id as string;
    const c = client();
    await c.signIn(ADMIN_TOKEN);
    for (const url of ['/ui/connections', `/ui/connections/${id}`, `/ui/connections?owner=${encodeURIComponent(owner)}`]) {
      const page = await c.get(url);
      assert.equal(page.status, 200);
      assert.ok(!page.body.includes('<script>alert'), url);
      assert.ok(page.body.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;@example.com'), url);
      assert.ok(!page.body.includes('imported-access-token-xyz'), 'never a token on a page');
    }

    // Tags are shown (escaped too) and filter the list.
    const tagged = await admin('PATCH', `/v1/connections/${id}`, { end_user: 'eu-<b>1</b>', organization: 'org-7', labels: { team: 'data' } });
    assert.equal(tagged.statusCode, 200, tagged.body);
    const byLabel = await c.get('/ui/connections?label=team%3Ddata');
    assert.match(byLabel.body, /end user: eu-&lt;b&gt;1&lt;\/b&gt;/);
    assert.match(byLabel.body, /team=data/);
    assert.ok(!byLabel.body.includes(`/ui/connections/${connection}"`), 'the filter leaves out untagged connections');
    assert.ok((await c.get('/ui/connections?organization=org-7')).body.includes(`/ui/connections/${id}"`));
  });

  test('create an agent: the key is on the result page once, never on a later page or in the logs; revoke asks first', async () => {
    const c = client();
    await c.signIn(ADMIN_TOKEN);
    const created = await c.submit('/ui/agents', '/ui/agents', {
      name: 'nightly-batch',
      owner: 'alice@example.com',
      grant0_connection: connection,
      grant0_scopes: 'items:read items:write',
    });
    assert.equal(created.status, 200, created.body);
    assert.equal(created.headers['cache-control'], 'no-store');
    const key = /id="api-key" class="wide mono" readonly value="(wrt_[^"]+)"/.exec(created.body)?.[1];
    assert.ok(key, 'the key is shown');
    const id = /href="\/ui\/agents\/(agt_[^"]+)"/.exec(created.body)![1]!;
    const proxied = await fetch(`${env.warrant.config.publicUrl.replace(':0', `:${(env.warrant.app.server.address() as { port: number }).port}`)}/v1/proxy/${connection}/items`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(proxied.status, 200, 'the key shown is the working key');

    for (const url of ['/ui/agents', `/ui/agents/${id}`, `/ui/audit?agent=${id}`]) assert.ok(!(await c.get(url)).body.includes(key!), url);
    assert.ok(!env.logs.text().includes(key!), 'the key is not logged');

    // Narrow: drop items:write.
    const detail = await c.get(`/ui/agents/${id}`);
    assert.match(detail.body, /Narrow grants/);
    const narrowed = await c.post('POST', `/ui/agents/${id}/grants`, { _csrf: c.csrfOf(detail.body)!, grant: connection, [`scope_${connection}`]: 'items:read' });
    assert.equal(narrowed.status, 303);
    assert.deepEqual((await admin('GET', `/v1/agents/${id}`)).json().grants[0].scopes, ['items:read']);

    const ask = await c.submit('/ui/agents', `/ui/agents/${id}/revoke`);
    assert.equal(ask.status, 200);
    assert.match(ask.body, /Please confirm/);
    assert.equal((await admin('GET', `/v1/agents/${id}`)).json().status, 'active', 'nothing happens before the confirmation');
    const done = await c.post('POST', `/ui/agents/${id}/revoke`, { _csrf: c.csrfOf(ask.body)!, confirm: 'yes' });
    assert.equal(done.status, 200);
    assert.match(done.body, /revoked/);
    assert.equal((await admin('GET', `/v1/agents/${id}`)).json().status, 'revoked');

    const audit = await c.get(`/ui/audit?agent=${id}`);
    assert.match(audit.body, /Chain verified/);
    const types = [...audit.body.matchAll(/<th scope="row">(agent\.[a-z_]+)<\/th>/g)].map((m) => m[1]);
    assert.deepEqual(types.slice(0, 1), ['agent.revoked'], 'newest first');
    assert.ok(types.includes('agent.created') && types.includes('agent.narrowed'), types.join());
  });

  test('webhooks: created with the secret shown once, deliveries listed, redeliver sends it again', async () => {
    const c = client();
    await c.signIn(ADMIN_TOKEN);
    const created = await c.submit('/ui/webhooks', '/ui/webhooks', { url: `${receiver.url}/hook`, events: 'agent.*' });
    assert.equal(created.status, 200, created.body);
    const secret = /id="secret" class="wide mono" readonly value="(whsec_[^"]+)"/.exec(created.body)?.[1];
    assert.ok(secret);
    const hook = /href="\/ui\/webhooks\/([^"]+)">Deliveries/.exec(created.body)![1]!;
    assert.ok(!(await c.get('/ui/webhooks')).body.includes(secret!));

    await admin('POST', '/v1/agents', { name: 'hooked', owner: 'alice@example.com', grants: [{ connection, scopes: ['items:read'] }] });
    await eventually(() => receiver.at('/hook').length >= 1);
    const deliveries = await eventually(async () => {
      const page = await c.get(`/ui/webhooks/${hook}`);
      return page.body.includes('badge-delivered') ? page : undefined;
    });
    const delivery = /action="\/ui\/webhooks\/[^/]+\/deliveries\/([^/]+)\/redeliver"/.exec(deliveries.body)![1]!;
    const before = receiver.at('/hook').length;
    const redeliver = await c.post('POST', `/ui/webhooks/${hook}/deliveries/${delivery}/redeliver`, { _csrf: c.csrfOf(deliveries.body)! });
    assert.equal(redeliver.status, 303);
    await eventually(() => receiver.at('/hook').length > before);
    const audit = (await admin('GET', `/v1/audit?type=webhook.redelivered&subject=webhook:${hook}`)).json();
    assert.equal(audit.entries.length, 1);
  });

  test('providers show their quirks and whether a client is configured; the audit page pages newest first', async () => {
    const c = client();
    await c.signIn(ADMIN_TOKEN);
    const providers = await c.get('/ui/providers');
    assert.equal(providers.status, 200);
    assert.match(providers.body, /href="\/ui\/providers\/sandbox"/);
    assert.match(providers.body, /production: configured/);
    assert.match(providers.body, /no client id/, 'catalog entries without credentials say so');
    const sandbox = await c.get('/ui/providers/sandbox');
    assert.match(sandbox.body, /Scope rules/);
    assert.match(sandbox.body, /items:read/);

    const first = await c.get('/ui/audit');
    const seqs = [...first.body.matchAll(/<tr><td>(\d+)<\/td>/g)].map((m) => Number(m[1]));
    assert.ok(seqs.length > 1);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => b - a));
    const bad = await c.get('/ui/audit?since=yesterday');
    assert.equal(bad.status, 400);
    assert.match(bad.body, /invalid_request/);
  });
});
