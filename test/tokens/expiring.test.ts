import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { startLifecycle, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { startReceiver, type Receiver, type Received } from '../helpers/receiver.ts';
import { ADMIN_TOKEN, captureLogger } from '../helpers/app.ts';
import { storeKinds } from '../helpers/stores.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant, type Warrant } from '../../src/warrant.ts';

// Grants that die for good (issue 9): Atlassian refresh tokens end 365 days after consent,
// Intuit's after 5 years, and idle grants that cannot be refreshed end after the idle timeout,
// whatever Warrant does. Nothing said so before the day: the first sign was `reauth_required` in
// the middle of an agent's work. Now a `credential.expiring` event (audit, signed webhook with a
// re-connect link) and a warn line go out 14 days and 2 days before, once each, whatever the
// number of passes, restarts and instances.

const DAY_MS = 86_400_000;

/** Standard Webhooks verification from the spec, apart from src/. */
function signedBy(secret: string, r: Received): boolean {
  const id = r.headers['webhook-id'];
  const ts = r.headers['webhook-timestamp'];
  const header = r.headers['webhook-signature'];
  if (typeof id !== 'string' || typeof ts !== 'string' || typeof header !== 'string') return false;
  const expected = createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64')).update(`${id}.${ts}.${r.body}`).digest();
  return header.split(' ').some((s) => {
    const [version, sig] = s.split(',');
    const got = Buffer.from(sig ?? '', 'base64');
    return version === 'v1' && got.length === expected.length && timingSafeEqual(got, expected);
  });
}

interface ExpiringData {
  connection: string;
  provider: string;
  owner: string;
  dies_at: string;
  reason: string;
  days_left: number;
  notice: string;
  reconnect_url?: string;
}

for (const kind of storeKinds) describe(`credential.expiring (${kind.name}): 14 and 2 days before a grant dies for good, once each`, { skip: kind.skip }, () => {
  let env: LifecycleEnv;
  let receiver: Receiver;
  let secret: string;
  let second: Warrant | undefined;
  const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const ids = { capped: '', idle: '', idleRefreshing: '', restart: '' };

  before(async () => {
    receiver = await startReceiver();
    env = await startLifecycle({
      sandbox: { accessTokenTtl: 3600 },
      store: kind.name,
      env: { WARRANT_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.0/8' },
      providers: [
        { extends: 'sandbox', id: 'capped', refresh_token_lifetime: 13 * 86_400 },
        { extends: 'sandbox', id: 'idle', refresh_token_idle_timeout: 10 * 86_400 },
      ],
    });
    const hook = await env.warrant.app.inject({ method: 'POST', url: '/v1/webhooks', headers, payload: { url: `${receiver.url}/hooks`, events: ['credential.expiring'] } });
    assert.equal(hook.statusCode, 201, hook.body);
    secret = hook.json().secret;
  });
  after(async () => {
    await second?.close();
    await env?.cleanup();
    await receiver?.close();
  });

  const notices = async (id: string) =>
    (await env.warrant.audit.query({ type: 'credential.expiring', subject: `connection:${id}` })).map((e) => e.data as unknown as ExpiringData);
  const delivered = () => receiver.at('/hooks').map((r) => ({ r, body: JSON.parse(r.body) as { type: string; data: ExpiringData } }));

  test('a grant that dies in 13 days gets one 14-day notice: audit, signed webhook with a re-connect link, warn line without a token', async () => {
    ids.capped = await env.connectTo('capped', 'cap@example.com');
    const row = await env.warrant.connections.get(ids.capped);
    assert.equal(row.grant_started_at, row.created_at);
    assert.equal(row.expiry_notice, null);

    assert.equal(await env.warrant.scheduler.checkExpiry(), 1);
    assert.equal(await env.warrant.scheduler.checkExpiry(), 0, 'a second pass sent it again');
    const [n, ...more] = await notices(ids.capped);
    assert.equal(more.length, 0);
    assert.deepEqual(
      { ...n, dies_at: undefined },
      { connection: ids.capped, provider: 'capped', environment: 'production', owner: 'cap@example.com', dies_at: undefined, reason: 'absolute_lifetime', days_left: 13, notice: '14d' },
    );
    assert.equal(Date.parse(n!.dies_at), row.grant_started_at! + 13 * DAY_MS);
    assert.equal((await env.warrant.connections.get(ids.capped)).expiry_notice, '14d');
    // The audit entry holds no link: it is minted into the delivery.
    assert.equal(n!.reconnect_url, undefined);

    const [hook] = await eventually(() => {
      const d = delivered().filter((x) => x.body.data.connection === ids.capped);
      return d.length ? d : undefined;
    });
    assert.ok(signedBy(secret, hook!.r), 'the delivery is not signed with the webhook secret');
    assert.equal(hook!.body.type, 'credential.expiring');
    assert.equal(hook!.body.data.days_left, 13);
    assert.equal(hook!.body.data.dies_at, n!.dies_at);
    assert.ok(hook!.body.data.reconnect_url?.startsWith(`${env.warrant.config.publicUrl}/connect/cs_`), hook!.r.body);

    const line = env.logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.connection === ids.capped && l.days_left === 13);
    assert.equal(line?.level, 40);
    assert.equal(line?.reason, 'absolute_lifetime');
    assert.equal(line?.dies_at, n!.dies_at);
    const token = await env.warrant.store.vault.get({ scope: 'connection', ref: ids.capped, field: 'access_token' });
    const refresh = await env.warrant.store.vault.get({ scope: 'connection', ref: ids.capped, field: 'refresh_token' });
    for (const secretValue of [token!, refresh!, new URL(hook!.body.data.reconnect_url!).searchParams.get('t')!]) {
      assert.ok(!env.logs.text().includes(secretValue), 'a token or link in the logs');
    }
  });

  test('the link in the notice re-connects the still-active connection; the grant starts again and so do the notices', async () => {
    const id = await env.connectTo('capped', 'relink@example.com');
    assert.equal(await env.warrant.scheduler.checkExpiry(), 1);
    const [hook] = await eventually(() => {
      const d = delivered().filter((x) => x.body.data.connection === id);
      return d.length ? d : undefined;
    });
    const before = await env.warrant.connections.get(id);
    await env.warrant.store.db.updateTable('connections').set({ grant_started_at: before.grant_started_at! - 5 * DAY_MS }).where('id', '=', id).execute();
    const opened = await env.warrant.connect.openLink(hook!.body.data.reconnect_url!);
    const back = new URL(await env.sandbox.authorize(Object.fromEntries(new URL(opened.location).searchParams) as never));
    const outcome = await env.warrant.connect.handleCallback(back.searchParams, opened.cookieHeader, back.pathname);
    assert.equal(outcome.connection?.id, id);
    const after = await env.warrant.connections.get(id);
    assert.equal(after.status, 'active');
    assert.equal(after.expiry_notice, null);
    assert.ok(after.grant_started_at! >= before.grant_started_at!, 'the grant did not start again');
    // A connection without a notice is not re-connectable: the link mechanism is not a way around reauth.
    await assert.rejects(env.warrant.reconnects.link(id), /re-connect links are issued only while/);
    assert.equal(await env.warrant.scheduler.checkExpiry(), 1);
    assert.deepEqual((await notices(id)).map((n) => n.notice), ['14d', '14d']);
  });

  test('time moves to 1 day before the end: one 2-day notice, then nothing more', async () => {
    const now = Date.now();
    await env.warrant.store.db.updateTable('connections').set({ grant_started_at: now - 12 * DAY_MS }).where('id', '=', ids.capped).execute();
    assert.equal(await env.warrant.scheduler.checkExpiry(), 1);
    assert.equal(await env.warrant.scheduler.checkExpiry(), 0);
    const list = await notices(ids.capped);
    assert.deepEqual(
      list.map((n) => [n.notice, n.days_left]),
      [
        ['14d', 13],
        ['2d', 1],
      ],
    );
    assert.equal(Date.parse(list[1]!.dies_at), now - 12 * DAY_MS + 13 * DAY_MS);
    await eventually(() => delivered().filter((x) => x.body.data.connection === ids.capped && x.body.data.notice === '2d').length === 1);
  });

  test('a grant first seen within 2 days of its end gets the 2-day notice only; racing passes send it once', async () => {
    const id = await env.connectTo('capped', 'late@example.com');
    await env.warrant.store.db.updateTable('connections').set({ grant_started_at: Date.now() - 12.5 * DAY_MS }).where('id', '=', id).execute();
    const sent = await Promise.all([env.warrant.scheduler.checkExpiry(), env.warrant.scheduler.checkExpiry(), env.warrant.scheduler.checkExpiry()]);
    assert.equal(sent.reduce((a, b) => a + b, 0), 1, `sent ${sent}`);
    assert.deepEqual((await notices(id)).map((n) => n.notice), ['2d']);
  });

  test('an idle timeout counts only where refreshing cannot keep the grant alive (no refresh token)', async () => {
    const imported = await env.warrant.app.inject({
      method: 'POST',
      url: '/v1/connections',
      headers,
      payload: { provider: 'idle', owner: 'idle@example.com', access_token: 'imported-access-token-value', expires_in: 30 * 86_400, scopes: ['items:read'] },
    });
    assert.equal(imported.statusCode, 201, imported.body);
    ids.idle = imported.json().id;
    ids.idleRefreshing = await env.connectTo('idle', 'idle2@example.com');
    assert.equal(await env.warrant.scheduler.checkExpiry(), 1);
    const [n] = await notices(ids.idle);
    assert.equal(n?.reason, 'idle_timeout');
    assert.equal(n?.days_left, 10);
    assert.equal((await notices(ids.idleRefreshing)).length, 0);
    assert.ok(!env.logs.text().includes('imported-access-token-value'));
  });

  test('another instance started later (a restart) sends what is due and repeats nothing', async () => {
    // Due, never announced: only the new instance's own scheduler pass can send it.
    ids.restart = await env.connectTo('capped', 'restart@example.com');
    const before = (await env.warrant.audit.query({ type: 'credential.expiring' })).length;
    const { WARRANT_TEST_PG_SCHEMA: _schema, ...config } = env.env;
    const logs = captureLogger('warn');
    second = await createWarrant(loadConfig(config), { logger: logs.logger, notice: () => {}, scheduler: true });
    await second.listen();
    await eventually(async () => (await notices(ids.restart)).length === 1);
    // Give the loop a few more passes; nothing else may appear.
    await new Promise((r) => setTimeout(r, 1_000));
    const all = await env.warrant.audit.query({ type: 'credential.expiring' });
    assert.equal(all.length, before + 1);
    assert.deepEqual((await notices(ids.capped)).map((n) => n.notice), ['14d', '2d']);
    assert.equal((await notices(ids.idle)).length, 1);
  });
});
