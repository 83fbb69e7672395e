import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, sleep, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { Warrant, RefreshUnavailableError } from '../../sdk/src/index.ts';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const TOKEN_TTL_S = 2;

// The IdP's token endpoint fails (an outage fault) after the connection's last token has run
// out: Warrant answers `refresh_unavailable` with `retry_after`, and the SDK waits and retries
// within `refreshWaitMs`, only when the request body can be sent again.
describe('@warrant/sdk waits out refresh_unavailable within its deadline', () => {
  let env: LifecycleEnv;
  let url: string;

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: TOKEN_TTL_S } });
    url = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
  });
  after(async () => env?.cleanup());

  /** A connection whose token has run out while the IdP is down, and an agent key on it; counts the SDK's calls. */
  async function outage(owner: string) {
    const conn = await env.connect(owner, ['items:read', 'items:write']);
    const res = await env.warrant.app.inject({
      method: 'POST',
      url: '/v1/agents',
      headers: admin,
      payload: { name: owner, owner, grants: [{ connection: conn, scopes: ['items:read', 'items:write'], token_export: true }] },
    });
    assert.equal(res.statusCode, 201, res.body);
    const apiKey = (res.json() as { api_key: string }).api_key;
    env.sandbox.setFaults({ tokenEndpoint: { status: 503 } });
    await sleep(TOKEN_TTL_S * 1000 + 300);
    const sent: string[] = [];
    const counting: typeof fetch = (input, init) => {
      sent.push(String(input));
      return fetch(input, init);
    };
    const client = (refreshWaitMs: number) => new Warrant({ url, apiKey, refreshWaitMs, fetch: counting });
    return { conn, client, sent };
  }

  test('gives up past the deadline: retry_after is longer than refreshWaitMs, so the error comes at once', async () => {
    try {
      const { conn, client, sent } = await outage('ida@example.com');
      const started = Date.now();
      const err = await client(500).fetch(conn, '/items').then(
        () => assert.fail('expected refresh_unavailable'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof RefreshUnavailableError, String(err));
      assert.ok(err.retryAfter !== undefined && err.retryAfter >= 1, `retryAfter ${err.retryAfter}`);
      assert.equal(err.connection, conn);
      assert.equal(err.isRetryable, true);
      assert.equal(sent.length, 1, 'no retry that the deadline could not hold');
      assert.ok(Date.now() - started < 1_000);
      // 0 never waits either, and neither does a lease past its deadline.
      await assert.rejects(() => client(0).lease(conn, 1), RefreshUnavailableError);
    } finally {
      env.sandbox.setFaults({});
    }
  });

  test('waits and succeeds once the IdP is back, within the deadline; a string body is sent again', async () => {
    let healed: ReturnType<typeof setTimeout> | undefined;
    try {
      const { conn, client, sent } = await outage('jack@example.com');
      healed = setTimeout(() => env.sandbox.setFaults({}), 1_000);
      const started = Date.now();
      const warrant = client(15_000);
      const created = await warrant.json<{ name: string }>(conn, '/items', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'after the outage' }),
      });
      const elapsed = Date.now() - started;
      assert.equal(created.name, 'after the outage', 'the body reached the upstream on the retry');
      assert.ok(sent.length >= 2, `the SDK retried (${sent.length} sends)`);
      assert.ok(elapsed >= 900 && elapsed < 15_000, `${elapsed} ms`);
      // token() waits the same way (the IdP is back now: at once).
      const t = await warrant.token(conn, { minTtl: 1 });
      assert.ok(t.expiresAt!.getTime() > Date.now());
    } finally {
      clearTimeout(healed);
      env.sandbox.setFaults({});
    }
  });

  test('a streamed body cannot be sent twice: the error is thrown at once, whatever refreshWaitMs', async () => {
    try {
      const { conn, client, sent } = await outage('kate@example.com');
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new TextEncoder().encode('{"name":"streamed"}'));
          c.close();
        },
      });
      const started = Date.now();
      await assert.rejects(
        () => client(15_000).fetch(conn, '/items', { method: 'POST', headers: { 'content-type': 'application/json' }, body }),
        RefreshUnavailableError,
      );
      assert.equal(sent.length, 1);
      assert.ok(Date.now() - started < 1_000);
    } finally {
      env.sandbox.setFaults({});
    }
  });

  test("the caller's signal ends the wait", async () => {
    try {
      const { conn, client } = await outage('liam@example.com');
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('stopped by the caller')), 300);
      const started = Date.now();
      await assert.rejects(() => client(15_000).fetch(conn, '/items', { signal: controller.signal }), /stopped by the caller/);
      assert.ok(Date.now() - started < 1_500);
    } finally {
      env.sandbox.setFaults({});
    }
  });
});
