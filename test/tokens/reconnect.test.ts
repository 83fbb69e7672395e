import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { storeKinds } from '../helpers/stores.ts';
import { isWarrantError } from '../../src/errors/index.ts';
import { providerSchema } from '../../src/providers/index.ts';

// Re-connect links (security review, high 4): a link used to be a reusable 7-day HMAC capability,
// valid while the connection was active, in agent-facing problems and the audit log, with the
// account check skipped when the account was unknown: whoever held it could swap the account
// behind a connection. Each test here fails on that code.

for (const kind of storeKinds) describe(`re-connect links (${kind.name}): single use, browser-bound, only while reauth_required, same account`, { skip: kind.skip }, () => {
  let env: LifecycleEnv;
  let receiver: Receiver;
  const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const admin = (method: 'GET' | 'POST', url: string, payload?: object) => env.warrant.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });

  before(async () => {
    receiver = await startReceiver();
    env = await startLifecycle({ sandbox: { accessTokenTtl: 60 }, store: kind.name, env: { WARRANT_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.0/8' } });
    // The same IdP, but a provider that tells nobody whose grant it is: no introspection, no ID token, no userinfo.
    const def = env.sandbox.providerDefinition('sandbox-anon');
    const { introspection_url: _drop, ...production } = def.environments!.production!;
    env.warrant.catalog.set('sandbox-anon', providerSchema.parse({ ...def, environments: { production } }));
    // An OpenID provider: the account comes from the ID token's `sub` (no introspection either).
    env.warrant.catalog.set('sandbox-oidc', providerSchema.parse({ ...def, id: 'sandbox-oidc', default_scopes: ['openid', 'offline_access'], environments: { production } }));
  });
  after(async () => {
    await env?.cleanup();
    await receiver?.close();
  });

  /** Revokes the grant at the IdP and lets Warrant find out: the connection is reauth_required. */
  async function kill(id: string) {
    const t = await env.warrant.tokens.getFreshToken(id);
    await env.sandbox.revokeGrantOf(t.accessToken);
    const err = await env.warrant.connections.forceRefresh(id, 'test').catch((e: unknown) => e);
    assert.ok(isWarrantError(err, 'reauth_required'), String(err));
    assert.equal((await env.warrant.connections.get(id)).status, 'reauth_required');
    return err;
  }

  async function linkFor(id: string): Promise<string> {
    const res = await admin('POST', `/v1/connections/${id}/reconnect-link`);
    assert.equal(res.statusCode, 201, res.body);
    return res.json().url;
  }

  /** One browser: opens the link (keeps its cookie), consents at the IdP, returns to the callback. */
  async function browse(link: string, opts: { loginHint?: string; cookie?: string | null } = {}) {
    const u = new URL(link);
    const start = await env.warrant.app.inject({ url: u.pathname + u.search });
    if (start.statusCode !== 302) return { start };
    const own = String([start.headers['set-cookie']].flat()[0]).split(';')[0]!;
    const params = Object.fromEntries(new URL(start.headers.location as string).searchParams);
    const redirect = new URL(await env.sandbox.authorize({ ...params, ...(opts.loginHint ? { login_hint: opts.loginHint } : {}) } as never));
    const cookie = opts.cookie === undefined ? own : opts.cookie;
    const cb = await env.warrant.app.inject({ url: `${redirect.pathname}${redirect.search}`, headers: cookie ? { cookie } : {} });
    return { start, redirect, own, cb };
  }

  test('the agent-facing problem points at the connection, not at a capability; the audit log holds no link', async () => {
    const id = await env.connect('ann@example.com');
    const err = (await kill(id)) as { toProblem(): Record<string, unknown> };
    const problem = err.toProblem();
    assert.equal(problem.reauth_url, `${env.warrant.config.publicUrl}/v1/connections/${id}`);
    assert.doesNotMatch(JSON.stringify(problem), /\/connect\/|\/oauth\/reconnect|[?&](t|sig)=/);
    // That URL is the admin API: without the admin token it opens nothing.
    assert.equal((await env.warrant.app.inject({ url: `/v1/connections/${id}` })).statusCode, 401);

    const link = await linkFor(id);
    const audit = await env.warrant.audit.query({});
    const text = JSON.stringify(audit);
    assert.ok(!text.includes(new URL(link).searchParams.get('t')!), 'a link token in the audit log');
    assert.doesNotMatch(text, /\/connect\/cs_|\/oauth\/reconnect/);
  });

  test('the owner gets a working link through the webhook; the audit entry it is made from has none', async () => {
    const hook = await admin('POST', '/v1/webhooks', { url: `${receiver.url}/reauth`, events: ['connection.reauth_required'] });
    assert.equal(hook.statusCode, 201, hook.body);
    const id = await env.connect('ben@example.com');
    await kill(id);
    const got = await eventually(() => receiver.at('/reauth').find((r) => JSON.parse(r.body).data.subject === `connection:${id}`));
    const data = JSON.parse(got.body).data;
    assert.equal(data.reauth_url, `${env.warrant.config.publicUrl}/v1/connections/${id}`);
    assert.match(data.reconnect_url, new RegExp(`^${env.warrant.config.publicUrl}/connect/cs_[\\w-]+\\?t=[\\w-]{43}$`));
    assert.ok(Date.parse(data.reconnect_expires_at) > Date.now() + 6 * 86_400_000);
    const [entry] = await env.warrant.audit.query({ type: 'connection.reauth_required', subject: `connection:${id}` });
    assert.ok(!JSON.stringify(entry).includes(new URL(data.reconnect_url).searchParams.get('t')!));
    const { cb } = await browse(data.reconnect_url);
    assert.equal(cb!.statusCode, 200, cb!.body);
    assert.equal((await env.warrant.connections.get(id)).status, 'active');
  });

  test('a link revives the same connection with the same account; used twice, the second is refused', async () => {
    const id = await env.connect('cleo@example.com');
    await kill(id);
    const link = await linkFor(id);
    const { cb } = await browse(link);
    assert.equal(cb!.statusCode, 200, cb!.body);
    assert.match(cb!.body, new RegExp(`Connection: ${id}`));
    const row = await env.warrant.connections.get(id);
    assert.equal(row.status, 'active');
    assert.equal(row.subject, 'sandbox-user');
    await env.warrant.tokens.getFreshToken(id);

    await kill(id);
    const again = await browse(link);
    assert.equal(again.start.statusCode, 400, 'a used link stays used, even once the connection needs one again');
    assert.equal(again.start.json().code, 'invalid_request');
  });

  test('a link opened by several browsers at once opens for exactly one', async () => {
    const id = await env.connect('ivy@example.com');
    await kill(id);
    const u = new URL(await linkFor(id));
    const opens = await Promise.all(Array.from({ length: 8 }, () => env.warrant.app.inject({ url: u.pathname + u.search })));
    assert.deepEqual(opens.map((r) => r.statusCode).sort(), [302, 400, 400, 400, 400, 400, 400, 400]);
  });

  test('a link for an active connection is refused: at issue, at open, and at the callback', async () => {
    const id = await env.connect('dora@example.com');
    assert.equal((await admin('POST', `/v1/connections/${id}/reconnect-link`)).statusCode, 409);
    await kill(id);
    const [first, second, third] = [await linkFor(id), await linkFor(id), await linkFor(id)];
    // Opened while reauth_required, but the connection is revived before its callback.
    const u = new URL(third);
    const start = await env.warrant.app.inject({ url: u.pathname + u.search });
    assert.equal(start.statusCode, 302);
    const pending = new URL(await env.sandbox.authorize(Object.fromEntries(new URL(start.headers.location as string).searchParams) as never));
    assert.equal((await browse(first)).cb!.statusCode, 200);
    assert.equal((await env.warrant.connections.get(id)).status, 'active');

    const late = await browse(second);
    assert.equal(late.start.statusCode, 409);
    assert.equal(late.start.json().code, 'conflict');
    const cookie = String([start.headers['set-cookie']].flat()[0]).split(';')[0]!;
    const cb = await env.warrant.app.inject({ url: `${pending.pathname}${pending.search}`, headers: { cookie } });
    assert.equal(cb.statusCode, 409);
    assert.equal((await env.warrant.connections.get(id)).status, 'active');
  });

  test('a link opened in browser A and completed in browser B is refused', async () => {
    const id = await env.connect('eve@example.com');
    await kill(id);
    const { cb, redirect, own } = await browse(await linkFor(id), { cookie: null });
    assert.equal(cb!.statusCode, 400);
    assert.equal(cb!.json().field, 'cookie');
    assert.equal((await env.warrant.connections.get(id)).status, 'reauth_required');
    // The browser that opened it still can.
    const ok = await env.warrant.app.inject({ url: `${redirect!.pathname}${redirect!.search}`, headers: { cookie: own } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal((await env.warrant.connections.get(id)).status, 'active');
  });

  test('a re-connect with a different account is refused; the connection keeps its account', async () => {
    const id = await env.connect('fay@example.com');
    assert.equal((await env.warrant.connections.get(id)).subject, 'sandbox-user');
    await kill(id);
    // Someone who got hold of the link consents as another user.
    const { cb } = await browse(await linkFor(id), { loginHint: 'mallory' });
    assert.equal(cb!.statusCode, 400);
    assert.match(cb!.body, /account_mismatch/);
    const row = await env.warrant.connections.get(id);
    assert.equal(row.status, 'reauth_required');
    assert.equal(row.subject, 'sandbox-user');
  });

  test('the account of an OpenID provider comes from the ID token; another account is refused', async () => {
    const id = await env.connectTo('sandbox-oidc', 'hal@example.com');
    assert.equal((await env.warrant.connections.get(id)).subject, 'sandbox-user');
    await kill(id);
    const { cb } = await browse(await linkFor(id), { loginHint: 'mallory' });
    assert.equal(cb!.statusCode, 400);
    assert.match(cb!.body, /account_mismatch/);
    const same = await browse(await linkFor(id));
    assert.equal(same.cb!.statusCode, 200, same.cb!.body);
    assert.equal((await env.warrant.connections.get(id)).status, 'active');
  });

  test('a provider that tells nobody the account: the re-connect makes a pending new connection, never a swap', async () => {
    const id = await env.connectTo('sandbox-anon', 'gus@example.com');
    assert.equal((await env.warrant.connections.get(id)).subject, null);
    const before = await env.warrant.store.vault.getAll('connection', id);
    await kill(id);
    const link = await linkFor(id);
    const { cb } = await browse(link, { loginHint: 'mallory' });
    assert.equal(cb!.statusCode, 200, cb!.body);
    assert.match(cb!.body, /Waiting for confirmation/);

    const old = await env.warrant.connections.get(id);
    assert.equal(old.status, 'reauth_required', 'the old connection is untouched');
    assert.equal((await env.warrant.store.vault.getAll('connection', id)).refresh_token, before.refresh_token);
    const session = (await admin('GET', `/v1/connect-sessions/${new URL(link).pathname.split('/').pop()}`)).json();
    assert.equal(session.reconnect_of, id);
    assert.equal(session.confirmation_required, true);
    const candidate = session.connection_id as string;
    assert.notEqual(candidate, id);
    const c = await env.warrant.connections.get(candidate);
    assert.equal(c.owner, 'gus@example.com');
    assert.equal(c.refresh_due_at, null, 'not refreshed behind the owner\'s back');
    const [pending] = await env.warrant.audit.query({ type: 'connection.reconnect_pending', subject: `connection:${id}` });
    assert.equal(pending?.data.candidate, candidate);

    // The owner confirms: the grant moves into the old connection, which keeps its id.
    const wrong = await admin('POST', `/v1/connections/${id}/confirm-reconnect`, { connection: 'con_nope' });
    assert.equal(wrong.statusCode, 400);
    const confirmed = await admin('POST', `/v1/connections/${id}/confirm-reconnect`, { connection: candidate });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    assert.equal(confirmed.json().status, 'active');
    assert.equal(await env.warrant.store.connections.get(candidate), undefined);
    const fresh = await env.warrant.tokens.getFreshToken(id, { minTtlSeconds: 1 });
    assert.ok(fresh.accessToken);
    assert.equal((await admin('GET', `/v1/connect-sessions/${session.id}`)).json().confirmation_required, false);
  });
});
