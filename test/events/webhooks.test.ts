import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { startLifecycle, sleep, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN, captureLogger } from '../helpers/app.ts';
import { openTestStore, storeKinds, type TestStore } from '../helpers/stores.ts';
import { startReceiver, type Received, type Receiver } from '../helpers/receiver.ts';
import { isWarrantError } from '../../src/errors/index.ts';
import {
  createAuditLog,
  createEventBus,
  createWebhooks,
  defaultRetry,
  matches,
  retryDelayMs,
  sign,
  type AuditLog,
  type EventBus,
  type Webhooks,
  type WebhooksOptions,
} from '../../src/events/index.ts';

/**
 * Standard Webhooks verification written from the spec, apart from src/: the key is the base64
 * after `whsec_`; the signature header is a space-separated list of `v1,<base64 HMAC-SHA256>` over
 * `${webhook-id}.${webhook-timestamp}.${raw body}`; the timestamp must be recent.
 */
function verifySignature(secret: string, r: Received, toleranceSeconds = 300): boolean {
  const id = r.headers['webhook-id'];
  const ts = r.headers['webhook-timestamp'];
  const header = r.headers['webhook-signature'];
  if (typeof id !== 'string' || typeof ts !== 'string' || typeof header !== 'string') return false;
  if (Math.abs(Date.now() / 1000 - Number(ts)) > toleranceSeconds) return false;
  const key = Buffer.from(secret.split('_')[1]!, 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${ts}.${r.body}`).digest();
  return header.split(' ').some((s) => {
    const [version, sig] = s.split(',');
    const got = Buffer.from(sig ?? '', 'base64');
    return version === 'v1' && got.length === expected.length && timingSafeEqual(got, expected);
  });
}

// ---- end to end: a real Warrant, the sandbox IdP, the admin API ----

describe('webhooks: a real Warrant against the sandbox', () => {
  let env: LifecycleEnv;
  let receiver: Receiver;
  const admin = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) =>
    env.warrant.app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, ...(payload ? { payload: payload as object } : {}) });
  const createHook = async (path: string, events: string[]) => {
    const res = await admin('POST', '/v1/webhooks', { url: `${receiver.url}${path}`, events });
    assert.equal(res.statusCode, 201, res.body);
    return res.json() as { id: string; url: string; events: string[]; status: string; secret: string };
  };

  before(async () => {
    receiver = await startReceiver();
    env = await startLifecycle({ sandbox: { accessTokenTtl: 4, rotateRefreshTokens: true }, env: { WARRANT_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.0/8' } });
  });
  after(async () => {
    await env?.cleanup();
    await receiver?.close();
  });

  test('a revoked grant makes ONE signed delivery with the re-connect link, however many calls fail after', async () => {
    const hook = await createHook('/reauth', ['connection.reauth_required']);
    assert.match(hook.secret, /^whsec_[A-Za-z0-9+/]+=*$/);
    assert.equal(Buffer.from(hook.secret.slice('whsec_'.length), 'base64').length, 32);

    const id = await env.connect();
    const t = await env.warrant.tokens.getFreshToken(id);
    const { refresh_token: refreshToken } = await env.warrant.store.vault.getAll('connection', id);
    await env.sandbox.revokeGrantOf(t.accessToken);
    await sleep(3_200); // inside the skew window of a 4 s token: the next call refreshes, and is refused
    const fail = () =>
      env.warrant.tokens.getFreshToken(id).then(
        () => assert.fail('a dead grant must not yield a token'),
        (err) => assert.ok(isWarrantError(err, 'reauth_required'), String(err)),
      );
    await fail();
    await eventually(() => receiver.at('/reauth').length === 1);
    for (let i = 0; i < 20; i++) await fail();
    await sleep(1_000); // room for a second delivery, were there one
    assert.equal(receiver.at('/reauth').length, 1, 'one alert per incident');

    const got = receiver.at('/reauth')[0]!;
    assert.ok(verifySignature(hook.secret, got), 'the signature verifies with an independent implementation');
    assert.ok(!verifySignature(hook.secret, { ...got, body: got.body.replace('reauth_required', 'reauth_requirex') }), 'a changed body does not');
    assert.equal(got.headers['content-type'], 'application/json');
    const body = JSON.parse(got.body);
    const [event] = await env.warrant.audit.query({ type: 'connection.reauth_required', subject: `connection:${id}` });
    assert.equal(body.type, 'connection.reauth_required');
    assert.equal(body.timestamp, new Date(event!.at).toISOString());
    assert.equal(body.data.id, event!.id);
    assert.equal(body.data.subject, `connection:${id}`);
    assert.equal(body.data.error, 'invalid_grant');
    assert.equal(body.data.reauth_url, `${env.warrant.config.publicUrl}/v1/connections/${id}`);
    // The single-use link is added as the delivery is made, never stored with the event.
    assert.match(body.data.reconnect_url, /\/connect\/cs_[\w-]+\?t=[\w-]+$/);
    assert.ok(!event!.data || !JSON.stringify(event!.data).includes(body.data.reconnect_url));
    for (const secret of [t.accessToken, refreshToken!, hook.secret]) assert.ok(!got.body.includes(secret), 'never a token or secret in the body');

    const deliveries = (await admin('GET', `/v1/webhooks/${hook.id}/deliveries`)).json().deliveries;
    assert.equal(deliveries.length, 1);
    assert.equal(deliveries[0].id, got.headers['webhook-id']);
    assert.equal(deliveries[0].event_id, event!.id);
    assert.equal(deliveries[0].event_type, 'connection.reauth_required');
    assert.equal(deliveries[0].status, 'delivered');
    assert.equal(deliveries[0].attempts, 1);
    assert.equal(deliveries[0].last_status, 200);
    assert.equal(deliveries[0].last_error, null);
  });

  test('wildcards: `connection.*` gets connection events only, `agent.*` agent events only, `*` everything', async () => {
    const agentsHook = await createHook('/agents', ['agent.*']);
    const connHook = await createHook('/conn', ['connection.*']);
    await createHook('/all', ['*']);
    const id = await env.connect('wanda@example.com', ['items:read']);
    const created = await admin('POST', '/v1/agents', { name: 'nightly', owner: 'wanda@example.com', grants: [{ connection: id, scopes: ['items:read'] }] });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal((await admin('DELETE', `/v1/agents/${created.json().id}`)).statusCode, 200);
    const types = (path: string) => receiver.at(path).map((r) => JSON.parse(r.body).type as string);
    await eventually(() => types('/agents').length === 2 && types('/all').includes('agent.revoked') && types('/conn').length >= 1);
    await sleep(300);
    assert.deepEqual(types('/agents'), ['agent.created', 'agent.revoked']);
    assert.ok(types('/conn').every((t) => t.startsWith('connection.')), types('/conn').join());
    const all = types('/all');
    for (const t of [...types('/conn'), 'agent.created', 'agent.revoked', 'webhook.created']) assert.ok(all.includes(t), `${t} in ${all.join()}`);
    assert.equal(new Set(receiver.at('/all').map((r) => r.headers['webhook-id'])).size, all.length, 'one delivery per event');
    // The same event sent to two webhooks carries a different webhook-id for each.
    const agentCreated = (path: string) => receiver.at(path).find((r) => JSON.parse(r.body).type === 'agent.created')!;
    assert.equal(JSON.parse(agentCreated('/agents').body).data.id, JSON.parse(agentCreated('/all').body).data.id);
    assert.notEqual(agentCreated('/agents').headers['webhook-id'], agentCreated('/all').headers['webhook-id']);
    await admin('DELETE', `/v1/webhooks/${agentsHook.id}`);
    await admin('DELETE', `/v1/webhooks/${connHook.id}`);
  });

  test('DELETE stops deliveries and removes the secret and the delivery log', async () => {
    const hook = await createHook('/deleted', ['agent.created']);
    const id = await env.connect('dora@example.com', ['items:read']);
    const agent = (name: string) => admin('POST', '/v1/agents', { name, owner: 'dora@example.com', grants: [{ connection: id, scopes: ['items:read'] }] });
    await agent('before');
    await eventually(() => receiver.at('/deleted').length === 1);
    const del = await admin('DELETE', `/v1/webhooks/${hook.id}`);
    assert.equal(del.statusCode, 200, del.body);
    assert.deepEqual(del.json(), { id: hook.id, deleted: true });
    await agent('after');
    await sleep(500);
    assert.equal(receiver.at('/deleted').length, 1, 'nothing is sent to a deleted webhook');
    assert.ok(!(await admin('GET', '/v1/webhooks')).json().webhooks.some((w: { id: string }) => w.id === hook.id));
    assert.equal((await admin('GET', `/v1/webhooks/${hook.id}/deliveries`)).statusCode, 404);
    assert.equal((await admin('DELETE', `/v1/webhooks/${hook.id}`)).statusCode, 404);
    assert.deepEqual(await env.warrant.store.vault.getAll('webhook', hook.id), {});
    const left = await env.warrant.store.db.selectFrom('webhook_deliveries').select('id').where('webhook_id', '=', hook.id).execute();
    assert.equal(left.length, 0);
    const audit = await env.warrant.audit.query({ subject: `webhook:${hook.id}` });
    assert.deepEqual(audit.map((e) => e.type), ['webhook.created', 'webhook.deleted']);
  });

  test('the secret is shown once: sealed in the store, absent from GET answers, logs and the audit log', async () => {
    const hook = await createHook('/secret?token=hook-query-credential', ['agent.revoked']);
    const key = hook.secret.slice('whsec_'.length);
    const db = env.warrant.store.db;
    const tables = ['keys', 'settings', 'owners', 'provider_clients', 'connections', 'secrets', 'agents', 'grants', 'connect_sessions', 'audit_events', 'webhooks', 'webhook_deliveries'] as const;
    for (const table of tables) {
      const dump = JSON.stringify(await db.selectFrom(table).selectAll().execute());
      assert.ok(!dump.includes(hook.secret) && !dump.includes(key), `secret in plaintext in ${table}`);
    }
    assert.equal(await env.warrant.store.vault.get({ scope: 'webhook', ref: hook.id, field: 'secret' }), hook.secret);
    for (const url of ['/v1/webhooks', `/v1/webhooks/${hook.id}`, `/v1/webhooks/${hook.id}/deliveries`]) {
      const res = await admin('GET', url);
      assert.equal(res.statusCode, 200, res.body);
      assert.ok(!res.body.includes(key), `secret in GET ${url}`);
    }
    const listed = (await admin('GET', '/v1/webhooks')).json().webhooks.find((w: { id: string }) => w.id === hook.id);
    assert.deepEqual(listed, { id: hook.id, url: hook.url, events: ['agent.revoked'], status: 'active', created_at: listed.created_at });
    assert.ok(!env.logs.text().includes(key));
    const [entry] = await env.warrant.audit.query({ subject: `webhook:${hook.id}` });
    assert.deepEqual(entry!.data, { origin: receiver.url, events: ['agent.revoked'] }, 'the audit records the origin, not a URL that may hold a credential');
  });

  test('input errors are invalid_request naming the field at fault; the admin credential is required', async () => {
    const cases: [unknown, string][] = [
      [{ url: 'ftp://example.com/hook', events: ['*'] }, 'body.url'],
      [{ url: 'not a url', events: ['*'] }, 'body.url'],
      [{ url: '/relative', events: ['*'] }, 'body.url'],
      [{ url: `https://example.com/${'x'.repeat(2048)}`, events: ['*'] }, 'body.url'],
      [{ events: ['*'] }, 'body.url'],
      [{ url: 'https://example.com/hook', events: [] }, 'body.events'],
      [{ url: 'https://example.com/hook', events: 'connection.*' }, 'body.events'],
      [{ url: 'https://example.com/hook', events: ['connection.revoked', 'Connection Revoked'] }, 'body.events[1]'],
      [{ url: 'https://example.com/hook', events: [42] }, 'body.events[0]'],
      [{ url: 'https://example.com/hook', events: ['*'], secret: 'whsec_mine' }, 'body.secret'],
    ];
    for (const [payload, field] of cases) {
      const res = await admin('POST', '/v1/webhooks', payload);
      assert.equal(res.statusCode, 400, `${JSON.stringify(payload)} → ${res.body}`);
      assert.equal(res.json().code, 'invalid_request');
      assert.equal(res.json().field, field, res.body);
    }
    const anonymous = await env.warrant.app.inject({ method: 'POST', url: '/v1/webhooks', payload: { url: 'https://example.com/hook', events: ['*'] } });
    assert.equal(anonymous.statusCode, 401);
    assert.equal((await env.warrant.app.inject({ url: '/v1/webhooks' })).statusCode, 401);
  });
});

// ---- the delivery worker on its own: fast backoff, receivers that fail ----

for (const kind of storeKinds) {
  describe(`webhook delivery worker (${kind.name})`, { skip: kind.skip }, () => {
    let ts: TestStore;
    let receiver: Receiver;
    let audit: AuditLog;
    let bus: EventBus;
    const running: Webhooks[] = [];
    const logs = captureLogger('debug');
    const fast: Partial<WebhooksOptions> = { retry: { baseMs: 50, factor: 2, capMs: 200, maxAttempts: 3 }, pollIntervalMs: 20, fetchTimeoutMs: 400, allowedNetworks: ['127.0.0.0/8'] };
    const start = (extra: Partial<WebhooksOptions> = {}, go = true) => {
      const w = createWebhooks({ store: ts.store, bus, audit, logger: logs.logger, ...fast, ...extra });
      running.push(w);
      if (go) w.start();
      return w;
    };
    const emit = async (type: string, data: Record<string, unknown> = {}) => {
      const entries = await audit.append({ type, actor: 'system', subject: 'connection:con_test', data });
      bus.publish(entries);
      return entries[0]!;
    };
    const rows = (webhookId: string) => ts.store.db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', webhookId).execute();

    before(async () => {
      ts = await openTestStore(kind.name);
      audit = createAuditLog({ db: ts.store.db, dialect: ts.store.dialect, now: Date.now });
      receiver = await startReceiver();
    });
    // Each test's workers stop with it: a worker left running would claim the next test's rows.
    afterEach(async () => {
      for (const w of running.splice(0)) await w.stop();
    });
    after(async () => {
      await receiver?.close();
      await ts?.cleanup();
    });

    test('a receiver answering 500, 500, 200 gets the same webhook-id three times; the delivery ends delivered after 3 attempts', async () => {
      bus = createEventBus();
      const w = start();
      receiver.answer('/flaky', 500, 500, 200);
      const hook = await w.create(`${receiver.url}/flaky`, ['connection.reauth_required']);
      const event = await emit('connection.reauth_required', { reauth_url: 'https://warrant.example/oauth/reconnect/con_test' });
      await eventually(async () => (await rows(hook.id))[0]?.status === 'delivered', 5_000, 20);
      const got = receiver.at('/flaky');
      assert.equal(got.length, 3);
      assert.equal(new Set(got.map((r) => r.headers['webhook-id'])).size, 1, 'the message id is stable across retries');
      assert.equal(new Set(got.map((r) => r.body)).size, 1, 'the body too');
      assert.ok(got.every((r) => verifySignature(hook.secret, r)));
      assert.equal(JSON.parse(got[0]!.body).data.id, event.id);
      const [row] = await rows(hook.id);
      assert.equal(row!.id, got[0]!.headers['webhook-id']);
      assert.equal(row!.attempts, 3);
      assert.equal(row!.last_status, 200);
      assert.equal(row!.last_error, null);
      assert.ok(row!.delivered_at);
    });

    test('a receiver that keeps failing: failed after maxAttempts, then left alone; no secret or URL path in last_error or logs', async () => {
      bus = createEventBus();
      const w = start();
      const path = '/services/T000/B000/s3cr3tpath';
      receiver.answer(path, 500);
      const hook = await w.create(`${receiver.url}${path}`, ['connection.*']);
      await emit('connection.refresh_failing');
      await eventually(async () => (await rows(hook.id))[0]?.status === 'failed', 5_000, 20);
      await sleep(300);
      assert.equal(receiver.at(path).length, 3);
      const [row] = await rows(hook.id);
      assert.equal(row!.attempts, 3);
      assert.equal(row!.last_status, 500);
      assert.equal(row!.last_error, 'HTTP 500');
      assert.equal(row!.next_attempt_at, null);
      const text = logs.text();
      assert.match(text, /giving up/);
      assert.ok(!text.includes('s3cr3tpath') && !text.includes(hook.secret.slice(6)), 'logs carry the origin only, never the secret');
    });

    test('timeouts, refused connections and redirects are failed attempts; a redirect is never followed', async () => {
      bus = createEventBus();
      const w = start({ retry: { maxAttempts: 2, baseMs: 50, factor: 1, capMs: 50 } });
      receiver.answer('/hang', 'hang');
      receiver.answer('/moved', (res) => res.writeHead(307, { location: `${receiver.url}/target` }).end());
      const closed = await startReceiver();
      await closed.close();
      const hang = await w.create(`${receiver.url}/hang`, ['agent.created']);
      const moved = await w.create(`${receiver.url}/moved`, ['agent.created']);
      const refused = await w.create(`${closed.url}/gone?key=query-credential`, ['agent.created']);
      await emit('agent.created');
      const final = async (id: string) => ((await rows(id))[0]?.status === 'failed' ? (await rows(id))[0] : undefined);
      const [h, m, r] = await Promise.all([hang, moved, refused].map((x) => eventually(() => final(x.id), 5_000, 20)));
      assert.match(h!.last_error!, /^timeout/);
      assert.equal(h!.last_status, null);
      assert.equal(m!.last_status, 307);
      assert.equal(receiver.at('/target').length, 0, 'the redirect is not followed');
      assert.equal(r!.last_error, 'connection refused');
      assert.ok(!logs.text().includes('query-credential'));
    });

    test('pending deliveries survive a restart: queued by one instance, sent by the next', async () => {
      bus = createEventBus();
      const first = start({}, false); // never delivers: the append queues the row
      const hook = await first.create(`${receiver.url}/restart`, ['connection.recovered']);
      await emit('connection.recovered');
      await eventually(async () => (await rows(hook.id)).length === 1, 5_000, 20);
      await first.stop();
      await sleep(100);
      assert.equal(receiver.at('/restart').length, 0);
      start();
      await eventually(() => receiver.at('/restart').length === 1, 5_000, 20);
      assert.ok(verifySignature(hook.secret, receiver.at('/restart')[0]!));
      await eventually(async () => (await rows(hook.id))[0]?.status === 'delivered', 5_000, 20);
    });

    test('an event published twice, or matched by two patterns of one webhook, is delivered once', async () => {
      bus = createEventBus();
      const w = start();
      const hook = await w.create(`${receiver.url}/once`, ['connection.*', 'connection.revoked', '*']);
      const entries = await audit.append({ type: 'connection.revoked', actor: 'admin', subject: 'connection:con_x' });
      bus.publish(entries);
      bus.publish(entries);
      const ofEvent = async () => (await rows(hook.id)).filter((r) => r.event_id === entries[0]!.id);
      await eventually(async () => (await ofEvent())[0]?.status === 'delivered', 5_000, 20);
      await sleep(200);
      assert.equal((await ofEvent()).length, 1);
      // `*` also matches the webhook's own `webhook.created`, delivered separately.
      const sent = receiver.at('/once').map((r) => JSON.parse(r.body).data.id);
      assert.deepEqual(sent.filter((id) => id === entries[0]!.id), [entries[0]!.id]);
    });

    test('two workers on one store send each delivery once', { skip: kind.name === 'sqlite' ? 'one process owns an embedded store' : false }, async () => {
      bus = createEventBus();
      const a = start();
      start(); // a second instance's worker, same store, its own bus
      const hook = await a.create(`${receiver.url}/shared`, ['agent.*']);
      for (let i = 0; i < 30; i++) await emit('agent.created', { i });
      await eventually(async () => (await rows(hook.id)).filter((r) => r.status === 'delivered').length === 30, 10_000, 20);
      await sleep(200);
      assert.equal(receiver.at('/shared').length, 30);
    });
  });
}

describe('webhook matching and retry schedule', () => {
  test('signatures reproduce the Standard Webhooks test vector, and the verifier here accepts it', () => {
    // The specification's published vector: matching it lets receivers use any of its libraries.
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const signature = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';
    assert.equal(sign(secret, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'), signature);
    const received = {
      path: '/',
      headers: { 'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek', 'webhook-timestamp': '1614265330', 'webhook-signature': `v1,bm90LWl0 ${signature}` },
      body: '{"test": 2432232314}',
    };
    assert.ok(verifySignature(secret, received, Infinity));
    assert.ok(!verifySignature(secret, received), 'a 2021 timestamp is a replay today');
  });

  test('patterns: exact type, prefix wildcard, everything', () => {
    assert.ok(matches(['connection.reauth_required'], 'connection.reauth_required'));
    assert.ok(!matches(['connection.reauth_required'], 'connection.recovered'));
    assert.ok(matches(['connection.*'], 'connection.recovered'));
    assert.ok(!matches(['connection.*'], 'connections.x'));
    assert.ok(!matches(['connection.*'], 'agent.created'));
    assert.ok(matches(['*'], 'agent.created'));
    assert.ok(!matches([], 'agent.created'));
  });

  test('default schedule: 5 s, 20 s, 80 s, 320 s, 1280 s, then 1 h; jitter within ±20%; Retry-After respected', () => {
    const mid = () => 0.5;
    const delays = Array.from({ length: defaultRetry.maxAttempts - 1 }, (_, i) => retryDelayMs(i + 1, defaultRetry, 0, mid));
    assert.deepEqual(delays, [5_000, 20_000, 80_000, 320_000, 1_280_000, 3_600_000, 3_600_000]);
    assert.equal(retryDelayMs(1, defaultRetry, 0, () => 0), 4_000);
    assert.equal(retryDelayMs(1, defaultRetry, 0, () => 1), 6_000);
    assert.equal(retryDelayMs(1, defaultRetry, 120_000, mid), 120_000);
    assert.equal(retryDelayMs(1, defaultRetry, 86_400_000, mid), 3_600_000, 'a Retry-After beyond the cap is capped');
  });
});
