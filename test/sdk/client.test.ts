import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { providerSchema } from '../../src/providers/index.ts';
import { startLifecycle, sleep, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import {
  Warrant,
  WarrantError,
  AgentUnauthenticatedError,
  AgentSuspendedError,
  PolicyDeniedError,
  ScopeInsufficientError,
  ReauthRequiredError,
  RateLimitedError,
  UpstreamRateLimitedError,
  UpstreamUnavailableError,
  UpstreamAuthFailedError,
  InvalidRequestError,
  PayloadTooLargeError,
  UpstreamHttpError,
} from '../../sdk/src/index.ts';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const BODY_LIMIT = 64 * 1024;
// Low enough that a loop of refused calls passes it however slow the machine; no other test comes near.
const AGENT_BURST = 30;

describe('@warrant/sdk against a real Warrant and the sandbox: the proxy, token, lease and every typed error', () => {
  let env: LifecycleEnv;
  let url: string;
  let conn: string;
  let reader: Warrant;
  let writer: Warrant;
  /** Every agent key and upstream token the tests handle: none may appear in an error. */
  const secrets: string[] = [];
  /** Every error the SDK threw. */
  const thrown: unknown[] = [];

  async function createAgent(grants: { connection: string; scopes: string[]; token_export?: boolean }[], name: string) {
    const owner = (await env.warrant.store.connections.get(grants[0]!.connection))?.owner;
    const res = await env.warrant.app.inject({ method: 'POST', url: '/v1/agents', headers: admin, payload: { name, owner, grants } });
    assert.equal(res.statusCode, 201, res.body);
    const { id, api_key: key } = res.json() as { id: string; api_key: string };
    secrets.push(key);
    return { id, key, client: new Warrant({ url, apiKey: key }) };
  }

  /** Runs `fn`, which must throw; returns what it threw after checking its class. */
  async function rejects<E>(fn: () => Promise<unknown>, cls: abstract new (...args: never[]) => E): Promise<E> {
    try {
      await fn();
    } catch (err) {
      thrown.push(err);
      assert.ok(err instanceof cls, `expected ${cls.name}, got ${inspect(err)}`);
      return err;
    }
    assert.fail(`expected ${cls.name}, nothing was thrown`);
  }

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 4 }, env: { WARRANT_PROXY_BODY_LIMIT_BYTES: String(BODY_LIMIT), WARRANT_AGENT_BURST: String(AGENT_BURST), WARRANT_AGENT_RATE_PER_SECOND: '10' } });
    url = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
    conn = await env.connect();
    reader = (await createAgent([{ connection: conn, scopes: ['items:read'] }], 'reader')).client;
    writer = (await createAgent([{ connection: conn, scopes: ['items:read', 'items:write'], token_export: true }], 'writer')).client;
  });
  after(async () => env?.cleanup());

  test('fetch: the upstream answer comes back as a Response, with the token injected by Warrant', async () => {
    const res = await reader.fetch(conn, '/whoami');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('warrant-request-id') ?? '', /^req_/);
    assert.equal(((await res.json()) as { client_id: string }).client_id, 'warrant', 'the upstream saw the connection token');
    // Without a leading slash, the same path.
    assert.equal((await reader.fetch(conn, 'items')).status, 200);
  });

  test('fetch: an upstream error is the upstream answer, not a thrown error; json() throws UpstreamHttpError for it', async () => {
    const res = await reader.fetch(conn, '/items/no-such-item');
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { error: 'not_found' });
    const err = await rejects(() => reader.json(conn, '/items/no-such-item?q=secret-looking'), UpstreamHttpError);
    assert.equal(err.status, 404);
    assert.deepEqual(JSON.parse(err.body), { error: 'not_found' });
    assert.match(err.requestId ?? '', /^req_/);
    assert.doesNotMatch(err.message, /secret-looking/, 'the query is not repeated in the message');
  });

  test('json(): a created item round-trips through the proxy with a string body', async () => {
    const created = await writer.json<{ id: string; name: string }>(conn, '/items', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'from the sdk' }),
    });
    assert.equal(created.name, 'from the sdk');
    const again = await reader.json<{ id: string; name: string }>(conn, `/items/${created.id}`);
    assert.deepEqual(again, created);
  });

  test('token(): the access token and its expiry; never a refresh token', async () => {
    const t = await writer.token(conn, { minTtl: 1 });
    assert.equal(t.connection, conn);
    assert.equal(t.tokenType, 'Bearer');
    assert.ok(t.accessToken.length > 10);
    assert.ok(t.expiresAt instanceof Date && t.expiresAt.getTime() > Date.now());
    assert.deepEqual(Object.keys(t).sort(), ['accessToken', 'connection', 'expiresAt', 'tokenType']);
    secrets.push(t.accessToken);
  });

  test('lease(): mirrors the API (refreshed, coversMinTtl, the token only with token_export)', async () => {
    const short = await writer.lease(conn, 1);
    assert.equal(short.connection, conn);
    assert.equal(short.coversMinTtl, true);
    assert.equal(typeof short.refreshed, 'boolean');
    assert.equal(typeof short.accessToken, 'string', 'the writer may export the token');
    secrets.push(short.accessToken!);
    // The sandbox's tokens live 4 s: an hour cannot be covered, and the lease says so.
    const long = await reader.lease(conn, 3600);
    assert.equal(long.coversMinTtl, false);
    assert.ok(long.expiresAt instanceof Date);
    assert.equal(long.accessToken, undefined, 'the reader has no token export');
  });

  test('policy_denied: from the proxy (members camelCased) and from token export', async () => {
    const err = await rejects(() => reader.fetch(conn, '/items', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }), PolicyDeniedError);
    assert.equal(err.code, 'policy_denied');
    assert.equal(err.status, 403);
    assert.deepEqual(err.grantedScopes, ['items:read']);
    assert.equal(err.isRetryable, false);
    assert.ok(err.nextStep.length > 0);
    assert.match(err.requestId ?? '', /^req_/);
    assert.equal(err.problem.code, 'policy_denied');
    const exported = await rejects(() => reader.token(conn), PolicyDeniedError);
    assert.equal(exported.connection, conn);
  });

  test('agent_unauthenticated: a wrong key; the key is in no part of the error', async () => {
    const wrongKey = `${secrets[0]!.slice(0, -6)}AAAAAA`;
    secrets.push(wrongKey);
    const stranger = new Warrant({ url, apiKey: wrongKey });
    const err = await rejects(() => stranger.fetch(conn, '/items'), AgentUnauthenticatedError);
    assert.equal(err.status, 401);
    await rejects(() => stranger.lease(conn, 10), AgentUnauthenticatedError);
  });

  test('agent_suspended: an admin suspends the agent; reasons come through', async () => {
    const { id, client } = await createAgent([{ connection: conn, scopes: ['items:read'] }], 'to-suspend');
    const patched = await env.warrant.app.inject({ method: 'PATCH', url: `/v1/agents/${id}`, headers: admin, payload: { status: 'suspended' } });
    assert.equal(patched.statusCode, 200, patched.body);
    const err = await rejects(() => client.fetch(conn, '/items'), AgentSuspendedError);
    assert.equal(err.agent, id);
    assert.deepEqual(err.reasons, ['admin']);
  });

  test('invalid_request: a min_ttl out of range names the field', async () => {
    const err = await rejects(() => writer.token(conn, { minTtl: -1 }), InvalidRequestError);
    assert.equal(err.status, 400);
    assert.equal(err.field, 'query.min_ttl');
  });

  test('payload_too_large: a body over the proxy limit', async () => {
    const err = await rejects(() => writer.fetch(conn, '/items', { method: 'POST', body: 'x'.repeat(BODY_LIMIT + 1) }), PayloadTooLargeError);
    assert.equal(err.status, 413);
    assert.equal(err.limitBytes, BODY_LIMIT);
  });

  test('scope_insufficient: the upstream refuses for a missing scope; requiredScope and grantedScopes', async () => {
    // The IdP granted items:read only, but the grant was imported claiming items:write too.
    const thin = await env.connect('frank@example.com', ['items:read']);
    const stored = await env.warrant.store.vault.getAll('connection', thin);
    secrets.push(stored.access_token!, stored.refresh_token!);
    const imported = await env.warrant.app.inject({
      method: 'POST',
      url: '/v1/connections',
      headers: admin,
      payload: { provider: 'sandbox', owner: 'frank@example.com', access_token: stored.access_token, refresh_token: stored.refresh_token, expires_in: 4, scopes: ['items:read', 'items:write'] },
    });
    assert.equal(imported.statusCode, 201, imported.body);
    const id = (imported.json() as { id: string }).id;
    const { client } = await createAgent([{ connection: id, scopes: ['items:write'] }], 'overreach');
    const err = await rejects(() => client.json(id, '/items', { method: 'POST', body: '{"name":"x"}', headers: { 'content-type': 'application/json' } }), ScopeInsufficientError);
    assert.equal(err.requiredScope, 'items:write');
    assert.deepEqual(err.grantedScopes, ['items:write']);
    assert.equal(err.connection, id);
  });

  test('reauth_required after a revocation at the IdP: reauthUrl, from fetch and from lease', async () => {
    const c = await env.connect('hank@example.com', ['items:read']);
    const { client } = await createAgent([{ connection: c, scopes: ['items:read'] }], 'hank');
    const t = await env.warrant.tokens.getFreshToken(c);
    secrets.push(t.accessToken);
    await env.sandbox.revokeGrantOf(t.accessToken);
    const err = await rejects(() => client.fetch(c, '/items'), ReauthRequiredError);
    assert.equal(err.status, 424);
    assert.equal(err.reauthUrl, `${env.warrant.config.publicUrl}/v1/connections/${c}`);
    assert.equal(err.connection, c);
    assert.equal(err.isRetryable, false);
    await rejects(() => client.lease(c, 10), ReauthRequiredError);
  });

  test('upstream_rate_limited and upstream_unavailable after Warrant has retried: retryAfter, retries', async () => {
    env.sandbox.setFaults({ api: { status: 429, retryAfter: 0, count: 10 } });
    try {
      const limited = await rejects(() => reader.fetch(conn, '/items'), UpstreamRateLimitedError);
      assert.equal(limited.retries, 3);
      assert.equal(typeof limited.retryAfter, 'number');
      assert.equal(limited.isRetryable, true);
      env.sandbox.setFaults({ api: { status: 502, count: 10 } });
      const down = await rejects(() => reader.fetch(conn, '/items'), UpstreamUnavailableError);
      assert.equal(down.status, 502);
      assert.equal(down.upstreamStatus, 502);
    } finally {
      env.sandbox.setFaults({});
    }
  });

  test("rate_limited: Warrant's own per-agent limit; retryAfter and limit", async () => {
    const { client } = await createAgent([{ connection: conn, scopes: ['items:read'] }], 'flooder');
    // Refused calls still spend the agent's budget (burst AGENT_BURST, then AGENT_RATE a second): no upstream needed.
    let err: RateLimitedError | undefined;
    for (let i = 0; i < AGENT_BURST * 3 && !err; i++) {
      await client.fetch('con_not_mine', '/items').catch((e: unknown) => {
        if (e instanceof RateLimitedError) err = e;
        else assert.ok(e instanceof PolicyDeniedError, inspect(e));
      });
    }
    assert.ok(err, 'some call was over the limit');
    thrown.push(err);
    assert.equal(err.status, 429);
    assert.equal(err.limit, 'agent_rate');
    assert.ok(typeof err.retryAfter === 'number' && err.retryAfter >= 0);
    assert.equal(err.isRetryable, true);
  });

  test('upstream_auth_failed: a fresh token refused again; upstreamStatus and upstreamBody', async () => {
    const def = providerSchema.parse({ ...env.sandbox.providerDefinition('sandbox-picky'), auth_failures: [{ status: 200 }] });
    env.warrant.catalog.set('sandbox-picky', def);
    const picky = await env.connectTo('sandbox-picky');
    const { client } = await createAgent([{ connection: picky, scopes: ['items:read'] }], 'picky');
    const err = await rejects(() => client.fetch(picky, '/items'), UpstreamAuthFailedError);
    assert.equal(err.upstreamStatus, 200);
    assert.equal(typeof err.upstreamBody, 'string');
  });

  test('timeoutMs: a Warrant that does not answer in time rejects with a TimeoutError', async () => {
    env.sandbox.setFaults({ api: { delayMs: 1_500, count: 1 } });
    try {
      const impatient = new Warrant({ url, apiKey: secrets[0]!, timeoutMs: 200 });
      const started = Date.now();
      await assert.rejects(() => impatient.fetch(conn, '/items'), (err: Error) => err.name === 'TimeoutError');
      assert.ok(Date.now() - started < 1_000);
    } finally {
      env.sandbox.setFaults({});
      // Let Warrant's upstream call finish: one still in flight when the sandbox closes keeps this process from exiting.
      await sleep(1_500);
    }
  });

  test('no secret (agent key, access or refresh token) in any error message, toString, inspect or JSON', () => {
    assert.ok(thrown.length >= 14, `${thrown.length} errors collected`);
    assert.ok(secrets.length >= 6);
    for (const err of thrown) {
      assert.ok(err instanceof WarrantError || err instanceof UpstreamHttpError);
      const views = [String(err), (err as Error).message, (err as Error).stack ?? '', inspect(err, { depth: 10 }), JSON.stringify(err)];
      for (const secret of secrets) for (const view of views) assert.ok(!view.includes(secret), `${(err as Error).name} shows a secret`);
    }
    for (const client of [reader, writer]) {
      const views = [inspect(client, { depth: 10, showHidden: true }), JSON.stringify(client), String(client)];
      for (const secret of secrets) for (const view of views) assert.ok(!view.includes(secret), 'the client shows its key');
    }
  });
});
