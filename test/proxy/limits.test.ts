import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createAgent, importConnection, rawExchange, startInstance, startLocalApi, type Instance, type LocalApi } from './local-api.ts';
import { eventually, sleep, withSchema } from '../helpers/lifecycle.ts';
import { createSchema, dropSchema, skipWithoutPostgres, skipWithoutRedis, testDatabaseUrl, testRedisUrl } from '../helpers/stores.ts';

// One agent could take the proxy down (security review, medium 7). Reproduces, on the code before
// the fix: no body-size limit (a 2 KiB body went upstream past any limit), no idle timeout on the
// raw proxy route (a stalled body held its request and its audit slot until Node's 300 s request
// timeout), no per-agent concurrency cap (300 stalled bodies by one agent were 300 calls in flight,
// 300 audit slots), and no rate limit (an agent's 4th call past a burst of 3 went upstream).

const postHead = (conn: string, key: string, length: number, path = '/items') =>
  `POST /v1/proxy/${conn}${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;

async function problem(res: Response, status: number, code: string) {
  const text = await res.text();
  assert.equal(res.status, status, text);
  const body = JSON.parse(text);
  assert.equal(body.code, code);
  return body;
}

describe('request bodies on the raw proxy route', () => {
  let api: LocalApi;
  let w: Instance;
  let conn: string;
  let key: string;
  before(async () => {
    api = await startLocalApi();
    w = await startInstance(api, { WARRANT_PROXY_BODY_LIMIT_BYTES: '1024', WARRANT_PROXY_IDLE_TIMEOUT_MS: '1000' });
    conn = await importConnection(w.warrant);
    ({ key } = await createAgent(w.warrant, conn, ['read', 'write']));
  });
  after(async () => {
    await w?.close();
    await api?.close();
  });

  const post = (body: BodyInit, headers: Record<string, string> = {}) =>
    fetch(`${w.base}/v1/proxy/${conn}/items`, { method: 'POST', body, headers: { authorization: `Bearer ${key}`, ...headers }, duplex: 'half' } as RequestInit);

  test('a body over the limit answers 413 payload_too_large; the upstream is never called', async () => {
    api.seen.length = 0;
    await problem(await post('x'.repeat(2048)), 413, 'payload_too_large');
    // Chunked: no length to refuse up front; it fails once the limit is passed.
    const chunked = new ReadableStream({
      start(c) {
        for (let i = 0; i < 8; i++) c.enqueue(new TextEncoder().encode('y'.repeat(256)));
        c.close();
      },
    });
    await problem(await post(chunked), 413, 'payload_too_large');
    assert.equal(api.seen.length, 0, 'nothing reached the upstream');
    const atLimit = await post('z'.repeat(1024));
    assert.equal(atLimit.status, 200, await atLimit.text());
    assert.equal(api.seen.length, 1);
    await w.warrant.auditQueue.flush();
    assert.equal(w.warrant.auditQueue.depth(), 0, 'no audit slot is held');
  });

  test('a body that stops arriving: 408 and the connection closed within the idle timeout; no slot held', async () => {
    api.seen.length = 0;
    const started = Date.now();
    const { closed } = rawExchange(w.base, `${postHead(conn, key, 100)}{"name":"sta`, 30_000);
    const { status, closedAt } = await closed;
    assert.equal(status, 408);
    // 1 s idle timeout; the bound is generous for a loaded machine, far below Node's 300 s.
    assert.ok(closedAt - started < 10_000, `closed after ${closedAt - started} ms`);
    assert.equal(api.seen.length, 0);
    await w.warrant.auditQueue.flush();
    assert.equal(w.warrant.auditQueue.depth(), 0, 'its audit slot was given back');
    assert.equal(w.warrant.limits.inFlight('agent', (await w.warrant.agents.authenticate(key)).id), 0);
  });

  test('a body Warrant does not forward (GET) is discarded by Node: the keep-alive connection serves the next request', async () => {
    const get = `GET /v1/proxy/${conn}/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: 5\r\n\r\nhello`;
    const last = `GET /v1/proxy/${conn}/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`;
    const { text } = await rawExchange(w.base, get + last, 30_000).closed;
    assert.equal(text.match(/^HTTP\/1\.1 200/gm)?.length, 2, text.slice(0, 500));
  });

  test('a slow body that never stays idle for the timeout goes through', async () => {
    api.seen.length = 0;
    const body = '{"name":"slow but steady"}';
    const head = postHead(conn, key, body.length).replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n');
    const { socket, closed } = rawExchange(w.base, head, 30_000);
    for (const ch of body.match(/.{1,5}/g)!) {
      await sleep(300);
      socket.write(ch);
    }
    const { status } = await closed;
    assert.equal(status, 200);
    assert.equal(api.seen[0]?.body.toString(), body);
  });
});

describe('large bodies stream through the same bounds', () => {
  let api: LocalApi;
  let w: Instance;
  let conn: string;
  let key: string;
  before(async () => {
    api = await startLocalApi();
    w = await startInstance(api, { WARRANT_PROXY_BODY_LIMIT_BYTES: String(2 * 1024 * 1024) });
    conn = await importConnection(w.warrant);
    ({ key } = await createAgent(w.warrant, conn, ['write']));
  });
  after(async () => {
    await w?.close();
    await api?.close();
  });

  const chunked = (bytes: number) =>
    new ReadableStream({
      start(c) {
        for (let sent = 0; sent < bytes; sent += 64 * 1024) c.enqueue(new Uint8Array(Math.min(64 * 1024, bytes - sent)).fill(120));
        c.close();
      },
    });
  const post = (body: BodyInit) =>
    fetch(`${w.base}/v1/proxy/${conn}/items`, { method: 'POST', body, headers: { authorization: `Bearer ${key}` }, duplex: 'half' } as RequestInit);

  test('a body past the replay buffer but under the limit streams to the upstream whole', async () => {
    api.seen.length = 0;
    const res = await post(chunked(1.5 * 1024 * 1024));
    assert.equal(res.status, 200, await res.text());
    assert.equal(api.seen[0]?.body.length, 1.5 * 1024 * 1024);
  });

  test('a streaming body that passes the limit: 413, and the upstream never gets a complete request', async () => {
    api.seen.length = 0;
    const body = await problem(await post(chunked(3 * 1024 * 1024)), 413, 'payload_too_large');
    await sleep(200);
    assert.equal(api.seen.length, 0);
    await w.warrant.auditQueue.flush();
    assert.equal(w.warrant.auditQueue.depth(), 0);
    const [entry] = (await w.warrant.audit.query({ type: 'proxy.call' })).filter((e) => e.data.request_id === body.instance);
    assert.equal(entry?.data.code, 'payload_too_large', 'audited as what the agent was told, not as an upstream failure');
  });
});

describe('one agent cannot take the proxy', () => {
  let api: LocalApi;
  let w: Instance;
  let conn: string;
  before(async () => {
    api = await startLocalApi();
    // Default limits; a long idle timeout so the stalled bodies stay stalled during the test.
    w = await startInstance(api, { WARRANT_PROXY_IDLE_TIMEOUT_MS: '120000' });
    conn = await importConnection(w.warrant);
  });
  after(async () => {
    await w?.close();
    await api?.close();
  });

  test('300 stalled bodies by one agent: the excess is refused 429, and another agent still gets 200', { timeout: 120_000 }, async () => {
    const a = await createAgent(w.warrant, conn, ['read', 'write'], 'staller');
    const b = await createAgent(w.warrant, conn, ['read'], 'bystander');
    const cap = w.warrant.config.agentConcurrency;
    const exchanges = Array.from({ length: 300 }, () => rawExchange(w.base, `${postHead(conn, a.key, 1000)}{"name":"`, 110_000));
    const refused = exchanges.map((e) => e.closed);
    await eventually(() => w.warrant.limits.inFlight('agent', a.id) === cap, 60_000, 50);
    // Everything past the cap was answered 429 and its connection closed; the rest still hang.
    const answered = await eventually(async () => {
      const settled = await Promise.all(refused.map((p) => Promise.race([p, sleep(0).then(() => undefined)])));
      const done = settled.filter((s) => s !== undefined);
      return done.length === 300 - cap ? done : undefined;
    }, 60_000, 200);
    assert.ok(answered.every((r) => r!.status === 429 && /"code":"rate_limited"/.test(r!.text) && /retry-after: \d+/i.test(r!.text)));
    assert.ok(w.warrant.auditQueue.depth() <= cap, `the staller holds ${w.warrant.auditQueue.depth()} audit slots`);

    const res = await fetch(`${w.base}/v1/proxy/${conn}/items`, { headers: { authorization: `Bearer ${b.key}` } });
    assert.equal(res.status, 200, await res.text());

    for (const e of exchanges) e.socket.destroy();
    await eventually(() => w.warrant.limits.inFlight('agent', a.id) === 0, 30_000, 50);
    await eventually(async () => {
      await w.warrant.auditQueue.flush();
      return w.warrant.auditQueue.depth() === 0;
    }, 30_000, 100);
  });
});

describe('rate limits: 429 rate_limited with Retry-After', () => {
  let api: LocalApi;
  let w: Instance;
  let conn: string;
  let other: string;
  before(async () => {
    api = await startLocalApi();
    // Rates far below what the test can refill while it runs: one token per 100 s.
    w = await startInstance(api, {
      WARRANT_AGENT_RATE_PER_SECOND: '0.01',
      WARRANT_AGENT_BURST: '3',
      WARRANT_CONNECTION_RATE_PER_SECOND: '0.01',
      WARRANT_CONNECTION_BURST: '5',
    });
    conn = await importConnection(w.warrant);
    other = await importConnection(w.warrant);
  });
  after(async () => {
    await w?.close();
    await api?.close();
  });

  const get = (key: string, connection = conn) => fetch(`${w.base}/v1/proxy/${connection}/items`, { headers: { authorization: `Bearer ${key}` } });

  test('an agent over its rate gets 429 naming the limit, with Retry-After; another agent is unaffected', async () => {
    const a = await createAgent(w.warrant, conn, ['read'], 'eager');
    const b = await createAgent(w.warrant, conn, ['read'], 'patient');
    api.seen.length = 0;
    for (let i = 0; i < 3; i++) assert.equal((await get(a.key)).status, 200);
    const res = await get(a.key);
    const body = await problem(res, 429, 'rate_limited');
    assert.equal(body.limit, 'agent_rate');
    assert.ok(Number(res.headers.get('retry-after')) >= 1, 'Retry-After');
    assert.equal(body.retry_after, Number(res.headers.get('retry-after')));
    assert.equal(api.seen.length, 3, 'the refused call never went upstream');
    // Token export and lease draw on the same budget.
    await problem(await fetch(`${w.base}/v1/connections/${conn}/token`, { headers: { authorization: `Bearer ${a.key}` } }), 429, 'rate_limited');
    const lease = await fetch(`${w.base}/v1/connections/${conn}/lease`, {
      method: 'POST',
      headers: { authorization: `Bearer ${a.key}`, 'content-type': 'application/json' },
      body: '{"min_ttl":60}',
    });
    await problem(lease, 429, 'rate_limited');
    assert.equal((await get(b.key)).status, 200, 'another agent is unaffected');
  });

  test("a connection's budget is shared by its agents, and only agents granted it can spend it", async () => {
    // `conn` spent 4 of its 5 tokens above: one left.
    const c = await createAgent(w.warrant, conn, ['read'], 'third');
    const stranger = await createAgent(w.warrant, other, ['read'], 'stranger');
    for (let i = 0; i < 2; i++) await problem(await get(stranger.key, conn), 403, 'policy_denied');
    const last = await get(c.key);
    assert.equal(last.status, 200, `a stranger's refused calls spent nothing: ${await last.text()}`);
    const body = await problem(await get(c.key), 429, 'rate_limited');
    assert.equal(body.limit, 'connection_rate');
    assert.equal((await get(stranger.key, other)).status, 200, 'other connections are unaffected');
  });
});

describe('rate limits across instances with Redis', { skip: skipWithoutPostgres || skipWithoutRedis }, () => {
  test('the same agent limit holds across two Warrant instances sharing one Redis', { timeout: 60_000 }, async () => {
    const api = await startLocalApi();
    const schema = `t_${randomBytes(6).toString('hex')}`;
    await createSchema(schema);
    const env = {
      DATABASE_URL: withSchema(testDatabaseUrl!, schema),
      REDIS_URL: testRedisUrl!,
      WARRANT_MASTER_KEY: `k1:${randomBytes(32).toString('base64')}`,
      WARRANT_AGENT_RATE_PER_SECOND: '0.01',
      WARRANT_AGENT_BURST: '4',
    };
    const one = await startInstance(api, env);
    const two = await startInstance(api, env);
    try {
      assert.equal(one.warrant.limits.kind, 'redis');
      const conn = await importConnection(one.warrant);
      const { key } = await createAgent(one.warrant, conn, ['read']);
      const get = (w: Instance) => fetch(`${w.base}/v1/proxy/${conn}/items`, { headers: { authorization: `Bearer ${key}` } });
      const statuses = [];
      for (const w of [one, two, one, two, one, two]) statuses.push((await get(w)).status);
      // Each instance alone would have admitted 4.
      assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429]);
    } finally {
      await one.close();
      await two.close();
      await dropSchema(schema);
      await api.close();
    }
  });
});
