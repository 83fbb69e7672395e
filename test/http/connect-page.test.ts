import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { cookiePairs, pageForm } from '../helpers/connect-page.ts';
import { runWarrant } from '../helpers/process.ts';
import { ConfigError, loadConfig } from '../../src/config/index.ts';

describe('the hosted connect page: what is asked, Continue to the IdP, Cancel, unusable links, branding, scope checks', () => {
  let env: LifecycleEnv;
  let offsetMs = 0;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const HOST = 'localhost:80'; // inject's Host header: the page's origin as the browser sees it
  before(async () => {
    env = await startLifecycle({
      sandbox: { accessTokenTtl: 60 },
      now: () => Date.now() + offsetMs,
      env: { WARRANT_BRAND_NAME: 'Acme Ops', WARRANT_BRAND_COLOR: '#FFCC00', WARRANT_BRAND_LOGO_URL: 'https://brand.example/logo.svg' },
      providers: [
        {
          extends: 'sandbox',
          id: 'sandbox-described',
          name: 'Items <Cloud>',
          logo_url: 'https://cdn.items.example/logo.png',
          scope_descriptions: { 'items:read': 'Read your items & "lists"' },
        },
        { extends: 'sandbox', id: 'sandbox-bare', default_scopes: [] },
        { extends: 'sandbox', id: 'sandbox-free', free_scopes: true },
      ],
    });
  });
  after(async () => env?.cleanup());

  async function startSession(body: Record<string, unknown>) {
    const res = await env.warrant.app.inject({ method: 'POST', url: '/v1/connect-sessions', headers: admin, payload: { provider: 'sandbox', owner: 'alice@example.com', ...body } });
    assert.equal(res.statusCode, 201, res.body);
    return res.json() as { id: string; authorize_url: string; connect_url: string; expires_at: string };
  }
  const path = (url: string) => new URL(url).pathname + new URL(url).search;
  const sessionOf = async (id: string) => (await env.warrant.app.inject({ url: `/v1/connect-sessions/${id}`, headers: admin })).json();

  /** The browser on the page: its HTML, its forms and the CSRF cookie it set. */
  async function view(url: string) {
    const res = await env.warrant.app.inject({ url: path(url) });
    return { res, cookie: cookiePairs(res.headers['set-cookie']).join('; '), form: pageForm(res.body), cancel: pageForm(res.body, 'cancel') };
  }
  const submit = (form: { action: string; fields: Record<string, string> }, cookie: string, headers: Record<string, string> = { origin: `http://${HOST}` }) =>
    env.warrant.app.inject({
      method: 'POST',
      url: form.action,
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie, ...headers },
      payload: new URLSearchParams(form.fields).toString(),
    });

  test('the page shows the provider, the owner, each scope with what it opens, and the purpose, all escaped; viewing it consumes nothing', async () => {
    const purpose = 'Triage <script>alert(1)</script> & answer "urgent" tickets';
    const s = await startSession({ provider: 'sandbox-described', owner: "o'brien+<x>@example.com", scopes: ['items:read', 'items:write'], purpose });
    assert.notEqual(s.connect_url, s.authorize_url);
    assert.equal(new URL(s.connect_url).origin, env.warrant.config.publicUrl);
    assert.equal(new URL(s.connect_url).pathname, `/connect/${s.id}/review`);
    const { res, form } = await view(s.connect_url);
    assert.equal(res.statusCode, 200, res.body);
    assert.match(res.headers['content-type'] as string, /^text\/html/);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers['x-frame-options'], 'DENY');
    const csp = res.headers['content-security-policy'] as string;
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /img-src 'self' https:\/\/brand\.example https:\/\/cdn\.items\.example;/);
    assert.doesNotMatch(res.body, /<script/i);
    assert.match(res.body, /<h1><img src="https:\/\/cdn\.items\.example\/logo\.png" alt="">Connect Items &lt;Cloud&gt;<\/h1>/);
    assert.match(res.body, /o&#39;brien\+&lt;x&gt;@example\.com/);
    assert.match(res.body, /Triage &lt;script&gt;alert\(1\)&lt;\/script&gt; &amp; answer &quot;urgent&quot; tickets/);
    assert.match(res.body, /<code>items:read<\/code> — Read your items &amp; &quot;lists&quot;/);
    assert.match(res.body, /<code>GET \/items\/\*\*<\/code>/);
    assert.match(res.body, /<code>POST, PUT, PATCH, DELETE \/items\/\*\*<\/code>/);
    assert.match(res.body, /<code>offline_access<\/code> — keeps access working/);
    assert.match(res.body, /<button type="submit" class="primary">Continue to Items &lt;Cloud&gt;<\/button>/);
    assert.ok(form?.fields.t && form.fields.csrf);
    // A link preview or a mail scanner fetched it: still usable, by the page and by the start URL.
    assert.equal((await view(s.connect_url)).res.statusCode, 200);
    assert.equal((await sessionOf(s.id)).status, 'pending');
    assert.equal((await env.warrant.app.inject({ url: path(s.authorize_url) })).statusCode, 302);
  });

  test('Continue binds the browser and redirects to the IdP with PKCE; the flow completes through the sandbox and ends on the success page', async () => {
    const s = await startSession({ scopes: ['items:read', 'items:write'] });
    const page = await view(s.connect_url);
    const go = await submit(page.form!, page.cookie);
    assert.equal(go.statusCode, 303, go.body);
    const idp = new URL(go.headers.location as string);
    assert.equal(idp.origin + idp.pathname, `${env.sandbox.issuer}/auth`);
    assert.equal(idp.searchParams.get('code_challenge_method'), 'S256');
    assert.match(idp.searchParams.get('code_challenge')!, /^[A-Za-z0-9_-]{43}$/);
    const cookies = [go.headers['set-cookie']].flat().map(String);
    const binding = cookies.find((c) => c.startsWith(`warrant_connect_${s.id}=`))!;
    assert.match(binding, /HttpOnly; SameSite=Lax/);
    assert.ok(cookies.some((c) => c.startsWith(`warrant_csrf_${s.id}=;`) && /Max-Age=0/.test(c)), 'the CSRF cookie is cleared');

    const back = new URL(await env.sandbox.authorize(Object.fromEntries(idp.searchParams) as never));
    const done = await env.warrant.app.inject({ url: back.pathname + back.search, headers: { cookie: binding.split(';')[0]! } });
    assert.equal(done.statusCode, 200, done.body);
    assert.match(done.headers['content-security-policy'] as string, /default-src 'none'/);
    const session = await sessionOf(s.id);
    assert.equal(session.status, 'completed');
    assert.match(done.body, /<h1>Connected<\/h1>/);
    assert.match(done.body, new RegExp(`Connection: ${session.connection_id}`));
    for (const scope of ['items:read', 'items:write', 'offline_access']) assert.match(done.body, new RegExp(`<li><code>${scope}</code></li>`));
    assert.doesNotMatch(done.body, /Not granted/);
    assert.match(done.body, /Acme Ops/);
  });

  test('a second Continue, or the start URL after Continue, is refused cleanly; a forged form is refused and burns nothing', async () => {
    const s = await startSession({ scopes: ['items:read'] });
    const page = await view(s.connect_url);
    // Cross-site: no CSRF cookie (SameSite=Strict keeps it home), or another origin, or another CSRF token.
    for (const [cookie, headers] of [
      ['', { origin: `http://${HOST}` }],
      [page.cookie, { origin: 'https://evil.example' }],
      [page.cookie, { origin: `http://${HOST}`, 'sec-fetch-site': 'cross-site' }],
      [`warrant_csrf_${s.id}=${'A'.repeat(43)}`, { origin: `http://${HOST}` }],
    ] as const) {
      const forged = await submit(page.form!, cookie, headers);
      assert.equal(forged.statusCode, 403, `${cookie} ${JSON.stringify(headers)}`);
      assert.match(forged.body, /did not come from its page/);
    }
    assert.equal((await sessionOf(s.id)).status, 'pending');

    assert.equal((await submit(page.form!, page.cookie)).statusCode, 303);
    const again = await submit(page.form!, page.cookie);
    assert.equal(again.statusCode, 400);
    assert.match(again.headers['content-type'] as string, /^text\/html/);
    assert.match(again.body, /<h1>This link was already used<\/h1>/);
    assert.equal([again.headers['set-cookie'] ?? []].flat().length, 0, 'no second binding');
    const start = await env.warrant.app.inject({ url: path(s.authorize_url) });
    assert.equal(start.statusCode, 400);
    assert.equal(start.json().field, 't');
    const reopened = await view(s.connect_url);
    assert.equal(reopened.res.statusCode, 400);
    assert.equal(reopened.form, undefined);
  });

  test('Cancel fails the session with access_denied, or hands the outcome to redirect_to', async () => {
    const s = await startSession({ scopes: ['items:read'] });
    const page = await view(s.connect_url);
    const res = await submit(page.cancel!, page.cookie);
    assert.equal(res.statusCode, 200, res.body);
    assert.match(res.body, /<h1>Connection failed<\/h1>/);
    assert.match(res.body, /You cancelled/);
    const session = await sessionOf(s.id);
    assert.equal(session.status, 'failed');
    assert.equal(session.error, 'access_denied');
    assert.equal((await submit(page.form!, page.cookie)).statusCode, 400, 'nothing left to continue');

    const r = await startSession({ scopes: ['items:read'], redirect_to: 'https://app.example.com/done?x=1' });
    const rp = await view(r.connect_url);
    const away = await submit(rp.cancel!, rp.cookie);
    assert.equal(away.statusCode, 303);
    const to = new URL(away.headers.location as string);
    assert.equal(to.origin + to.pathname, 'https://app.example.com/done');
    assert.deepEqual(Object.fromEntries(to.searchParams), { x: '1', connect_session: r.id, status: 'failed', error: 'access_denied' });
  });

  test('an expired link renders 410, an unknown or forged one 400; neither shows the session', async () => {
    const s = await startSession({ provider: 'sandbox-described', scopes: ['items:read'] });
    offsetMs = 3_600_000;
    try {
      const expired = await view(s.connect_url);
      assert.equal(expired.res.statusCode, 410);
      assert.match(expired.res.body, /<h1>This link has expired<\/h1>/);
      assert.doesNotMatch(expired.res.body, /Items|alice/);
      const late = await submit({ action: `/connect/${s.id}/continue`, fields: { t: new URL(s.connect_url).searchParams.get('t')!, csrf: 'x'.repeat(43) } }, `warrant_csrf_${s.id}=${'x'.repeat(43)}`);
      assert.equal(late.statusCode, 410);
    } finally {
      offsetMs = 0;
    }
    const other = await startSession({ scopes: ['items:read'] });
    for (const url of [other.connect_url.replace(/t=[^&]+/, `t=${'A'.repeat(43)}`), `${env.warrant.config.publicUrl}/connect/cs_nope/review?t=abc`]) {
      const bad = await view(url);
      assert.equal(bad.res.statusCode, 400, url);
      assert.match(bad.res.body, /<h1>This link is not valid<\/h1>/);
      assert.doesNotMatch(bad.res.body, /alice|sandbox/);
    }
    assert.equal((await view(other.connect_url)).res.statusCode, 200, 'a forged token burns nothing');
  });

  test('branding: name, logo and colour on every connect page, text contrasting with the colour', async () => {
    const s = await startSession({ scopes: ['items:read'] });
    const { res } = await view(s.connect_url);
    assert.match(res.body, /<title>Connect Warrant sandbox · Acme Ops<\/title>/);
    assert.match(res.body, /<header><img src="https:\/\/brand\.example\/logo\.svg" alt=""><span>Acme Ops<\/span><\/header>/);
    assert.match(res.body, /background:#ffcc00;color:#111111/, 'dark text on a light brand colour');
    assert.match(res.body, /<p>Acme Ops asks for access/);
  });

  test('an invalid brand setting stops start-up with a message naming it, never echoing the value', async () => {
    for (const [name, value, message] of [
      ['WARRANT_BRAND_COLOR', 'red;}body{display:none', /WARRANT_BRAND_COLOR: must be a hex colour/],
      ['WARRANT_BRAND_LOGO_URL', 'javascript:alert(1)', /WARRANT_BRAND_LOGO_URL: must be an https:\/\/ URL or a data:image/],
      ['WARRANT_BRAND_LOGO_URL', 'http://brand.example/logo.png', /WARRANT_BRAND_LOGO_URL/],
    ] as const) {
      assert.throws(() => loadConfig({ WARRANT_DATA_DIR: '/tmp/x', [name]: value }), (e: unknown) => e instanceof ConfigError && message.test(e.message) && !e.message.includes(value));
    }
    const dir = mkdtempSync(join(tmpdir(), 'warrant-brand-'));
    try {
      const proc = runWarrant(['serve'], { WARRANT_DATA_DIR: dir, WARRANT_PORT: '0', WARRANT_BRAND_COLOR: 'blue' });
      const code = await Promise.race([proc.exit(), new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000).unref())]);
      if (code === 'timeout') await proc.kill('SIGKILL');
      assert.notEqual(code, 0);
      assert.notEqual(code, 'timeout');
      assert.match(proc.stderr(), /WARRANT_BRAND_COLOR: must be a hex colour such as #2f5bd3/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('scopes: each must be one of the provider rules (the offender named), absent means default_scopes, none at all is refused', async () => {
    const post = (body: Record<string, unknown>) => env.warrant.app.inject({ method: 'POST', url: '/v1/connect-sessions', headers: admin, payload: { provider: 'sandbox', owner: 'alice@example.com', ...body } });
    const unknown = await post({ scopes: ['items:read', 'items:delete'] });
    assert.equal(unknown.statusCode, 400);
    assert.equal(unknown.json().code, 'invalid_request');
    assert.equal(unknown.json().field, 'scopes[1]');
    assert.match(unknown.json().detail, /sandbox has no scope items:delete \(it has items:read, items:write, offline_access\)/);
    assert.equal((await post({ scopes: ['offline_access'] })).statusCode, 201, 'a default scope may be named');

    const defaults = await post({});
    assert.equal(defaults.statusCode, 201, defaults.body);
    const idp = new URL((await env.warrant.connect.openLink(defaults.json().connect_url)).location);
    assert.equal(idp.searchParams.get('scope'), 'offline_access');
    const page = await view((await post({})).json().connect_url);
    assert.match(page.res.body, /<ul class="scopes"><li><code>offline_access<\/code>/);

    const none = await post({ provider: 'sandbox-bare' });
    assert.equal(none.statusCode, 400);
    assert.equal(none.json().field, 'scopes');
    assert.match(none.json().detail, /sandbox-bare has no default_scopes/);
    assert.equal((await post({ provider: 'sandbox-bare', scopes: ['items:read'] })).statusCode, 201);

    const free = await post({ provider: 'sandbox-free', scopes: ['items:read', 'anything:else'] });
    assert.equal(free.statusCode, 201, free.body);
    const tooLong = await post({ scopes: ['items:read'], purpose: 'x'.repeat(501) });
    assert.equal(tooLong.statusCode, 400);
    assert.equal(tooLong.json().field, 'body.purpose');
  });
});
