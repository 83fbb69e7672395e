import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { providerSchema } from '../../src/providers/index.ts';
import { startLifecycle, sleep, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** A GET whose path is sent byte for byte as written. */
function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const u = new URL(url.replace(/\/v1\/.*/, ''));
  const path = url.slice(u.origin.length);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the proxy against the sandbox API: every problem code, retries, refresh on 401', () => {
  let env: LifecycleEnv;
  let base: string;
  let conn: string;
  let readerKey: string;
  let writerKey: string;

  async function createAgent(grants: { connection: string; scopes: string[]; token_export?: boolean }[], name = 'agent') {
    // The connection's own owner: another owner's agent would need a share (agents/shares.ts).
    const owner = (await env.warrant.store.connections.get(grants[0]!.connection))?.owner;
    const res = await env.warrant.app.inject({ method: 'POST', url: '/v1/agents', headers: admin, payload: { name, owner, grants } });
    assert.equal(res.statusCode, 201, res.body);
    return res.json().api_key as string;
  }

  const call = (key: string | undefined, path: string, init: RequestInit = {}) =>
    fetch(`${base}${path}`, { ...init, headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(init.headers as Record<string, string>) } });

  async function problem(res: Response, code: string, status: number) {
    assert.equal(res.status, status, `${code}: ${res.status}`);
    assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
    const body = await res.json();
    assert.equal(body.code, code);
    return body;
  }

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 4, rotateRefreshTokens: true } });
    base = await env.warrant.app.listen({ port: 0, host: '127.0.0.1' }).catch(() => `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`);
    base = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
    conn = await env.connect();
    readerKey = await createAgent([{ connection: conn, scopes: ['items:read'] }], 'reader');
    writerKey = await createAgent([{ connection: conn, scopes: ['items:read', 'items:write'], token_export: true }], 'writer');
  });
  after(async () => env?.cleanup());

  test('a call passes through with the token injected and trace headers; the agent key never reaches the upstream', async () => {
    env.sandbox.resetStats();
    const res = await call(readerKey, `/v1/proxy/${conn}/whoami`, { headers: { cookie: 'session=agent-cookie' } });
    assert.equal(res.status, 200);
    const who = await res.json();
    assert.equal(who.client_id, 'warrant', 'the upstream saw the connection token, not the agent key');
    assert.match(res.headers.get('warrant-request-id')!, /^req_/);
    assert.equal(res.headers.get('warrant-retries'), '0');
    assert.equal(env.sandbox.stats().apiRequests, 1);
  });

  test('agent_unauthenticated: no key, a wrong key, a revoked agent; the upstream is never called', async () => {
    env.sandbox.resetStats();
    await problem(await call(undefined, `/v1/proxy/${conn}/items`), 'agent_unauthenticated', 401);
    await problem(await call(`${readerKey.slice(0, -4)}AAAA`, `/v1/proxy/${conn}/items`), 'agent_unauthenticated', 401);
    const key = await createAgent([{ connection: conn, scopes: ['items:read'] }], 'short-lived');
    const list = (await env.warrant.app.inject({ url: '/v1/agents', headers: admin })).json();
    const agent = (list.agents as { id: string; name: string }[]).find((a) => a.name === 'short-lived')!;
    await env.warrant.app.inject({ method: 'DELETE', url: `/v1/agents/${agent.id}`, headers: admin });
    await problem(await call(key, `/v1/proxy/${conn}/items`), 'agent_unauthenticated', 401);
    assert.equal(env.sandbox.stats().apiRequests, 0);
  });

  test('policy_denied: a method outside the scope, a path outside every rule, a connection not granted; the upstream is never called', async () => {
    env.sandbox.resetStats();
    const post = await problem(await call(readerKey, `/v1/proxy/${conn}/items`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }), 'policy_denied', 403);
    assert.deepEqual(post.granted_scopes, ['items:read']);
    await problem(await call(readerKey, `/v1/proxy/${conn}/admin/users`), 'policy_denied', 403);
    await problem(await call(readerKey, `/v1/proxy/con_not_mine/items`), 'policy_denied', 403);
    assert.equal(env.sandbox.stats().apiRequests, 0);
  });

  test('invalid_request: a path that escapes the API base is refused before anything else', async () => {
    // Sent raw with node:http: fetch() and undici normalize `%2e%2e` away before it leaves the client.
    for (const path of ['/..%2f..%2foauth/token', '/%2e%2e/oauth/token', '/items/..%5c..%5coauth', '/%252e%252e/x', '/@evil.example/items', '/items/../../oauth/token']) {
      const res = await rawGet(`${base}/v1/proxy/${conn}${path}`, { authorization: `Bearer ${readerKey}` });
      assert.equal(res.status, 400, path);
      const body = JSON.parse(res.body) as { code: string; field: string };
      assert.equal(body.code, 'invalid_request', path);
      assert.equal(body.field, 'path', path);
    }
  });

  test('the upstream token expires between two calls: the agent sees only 200s', async () => {
    const first = await call(readerKey, `/v1/proxy/${conn}/items`);
    assert.equal(first.status, 200);
    await first.arrayBuffer();
    await sleep(4_500);
    const second = await call(readerKey, `/v1/proxy/${conn}/items`);
    assert.equal(second.status, 200);
    assert.equal(second.headers.get('warrant-token-refreshed'), 'true');
  });

  test('401 from the upstream (token killed early): refresh once, retry once, the agent sees 200', async () => {
    const t = await env.warrant.tokens.getFreshToken(conn);
    await env.sandbox.invalidateAccessToken(t.accessToken);
    env.sandbox.resetStats();
    const res = await call(readerKey, `/v1/proxy/${conn}/items`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('warrant-token-refreshed'), 'true');
    assert.equal(res.headers.get('warrant-retries'), '1');
    assert.equal(env.sandbox.stats().refreshRequests, 1);
  });

  test('a Slack-style body-level auth failure (200 {"ok":false,"error":"token_expired"}) is healed the same way', async () => {
    env.sandbox.setFaults({ api: { bodyLevelAuthFailure: true } });
    try {
      const t = await env.warrant.tokens.getFreshToken(conn);
      await env.sandbox.invalidateAccessToken(t.accessToken);
      const direct = await fetch(`${env.sandbox.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${t.accessToken}` } });
      assert.equal(direct.status, 200);
      assert.deepEqual(await direct.json(), { ok: false, error: 'invalid_auth' });
      const res = await call(readerKey, `/v1/proxy/${conn}/items`);
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.notEqual(body.ok, false, 'the agent never sees the body-level failure');
      assert.equal(res.headers.get('warrant-token-refreshed'), 'true');
    } finally {
      env.sandbox.setFaults({});
    }
  });

  test('upstream_auth_failed: a freshly refreshed token refused again is passed on, typed', async () => {
    // A provider whose every answer looks like an auth failure: the refresh works, the retry is refused again.
    const def = providerSchema.parse({ ...env.sandbox.providerDefinition('sandbox-picky'), auth_failures: [{ status: 200 }] });
    env.warrant.catalog.set('sandbox-picky', def);
    const picky = await env.connectTo('sandbox-picky');
    const key = await createAgent([{ connection: picky, scopes: ['items:read'] }], 'picky');
    const body = await problem(await call(key, `/v1/proxy/${picky}/items`), 'upstream_auth_failed', 401);
    assert.equal(body.upstream_status, 200, 'the answer the upstream gave is reported');
    assert.equal(typeof body.upstream_body, 'string');
  });

  test('scope_insufficient: the upstream refuses for a missing scope; the problem names it and what the agent holds', async () => {
    // The IdP granted items:read only, but the grant was imported claiming items:write too.
    const thin = await env.connect('frank@example.com', ['items:read']);
    const secrets = await env.warrant.store.vault.getAll('connection', thin);
    const imported = await env.warrant.app.inject({
      method: 'POST',
      url: '/v1/connections',
      headers: admin,
      payload: { provider: 'sandbox', owner: 'frank@example.com', access_token: secrets.access_token, refresh_token: secrets.refresh_token, expires_in: 4, scopes: ['items:read', 'items:write'] },
    });
    const id = imported.json().id;
    const key = await createAgent([{ connection: id, scopes: ['items:write'] }], 'overreach');
    const body = await problem(await call(key, `/v1/proxy/${id}/items`, { method: 'POST', body: '{"name":"x"}', headers: { 'content-type': 'application/json' } }), 'scope_insufficient', 403);
    assert.equal(body.required_scope, 'items:write');
    assert.deepEqual(body.granted_scopes, ['items:write']);
  });

  test('upstream 503 twice then 200: retried with backoff for a GET; a POST without Idempotency-Key is not retried', async () => {
    env.sandbox.setFaults({ api: { status: 503, retryAfter: 0, count: 2 } });
    const res = await call(readerKey, `/v1/proxy/${conn}/items`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('warrant-retries'), '2');
    env.sandbox.setFaults({ api: { status: 503, retryAfter: 0, count: 1 } });
    const post = await call(writerKey, `/v1/proxy/${conn}/items`, { method: 'POST', body: '{"name":"y"}', headers: { 'content-type': 'application/json' } });
    assert.equal(post.status, 503, 'passed through as-is: not ours to retry');
    env.sandbox.setFaults({ api: { status: 503, retryAfter: 0, count: 1 } });
    const keyed = await call(writerKey, `/v1/proxy/${conn}/items`, {
      method: 'POST',
      body: '{"name":"z"}',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'k-1' },
    });
    assert.equal(keyed.status, 201);
    assert.equal(keyed.headers.get('warrant-retries'), '1');
    env.sandbox.setFaults({});
  });

  test('upstream_rate_limited after the retries are spent, with retry_after', async () => {
    env.sandbox.setFaults({ api: { status: 429, retryAfter: 0, count: 10 } });
    const body = await problem(await call(readerKey, `/v1/proxy/${conn}/items`), 'upstream_rate_limited', 429);
    assert.equal(body.retries, 3);
    assert.ok(body.retry_after >= 0);
    env.sandbox.setFaults({});
  });

  test('upstream_unavailable: 502 after the retries; and an upstream that refuses connections', async () => {
    env.sandbox.setFaults({ api: { status: 502, count: 10 } });
    await problem(await call(readerKey, `/v1/proxy/${conn}/items`), 'upstream_unavailable', 502);
    env.sandbox.setFaults({});
    const dead = providerSchema.parse({
      ...env.sandbox.providerDefinition('sandbox-dead'),
      environments: { production: { ...env.sandbox.providerDefinition('x').environments!.production!, api_base_url: 'http://127.0.0.1:9/api' } },
    });
    env.warrant.catalog.set('sandbox-dead', dead);
    const deadConn = await env.connectTo('sandbox-dead');
    const key = await createAgent([{ connection: deadConn, scopes: ['items:read'] }], 'dead-end');
    const body = await problem(await call(key, `/v1/proxy/${deadConn}/items`), 'upstream_unavailable', 502);
    assert.equal(body.retries, 3);
  });

  test('refresh_unavailable: the IdP fails and the token has expired', async () => {
    const c = await env.connect('gina@example.com', ['items:read']);
    const key = await createAgent([{ connection: c, scopes: ['items:read'] }], 'gina');
    env.sandbox.setFaults({ tokenEndpoint: { status: 503 } });
    try {
      await sleep(4_200);
      const body = await problem(await call(key, `/v1/proxy/${c}/items`), 'refresh_unavailable', 503);
      assert.ok(body.retry_after >= 1);
    } finally {
      env.sandbox.setFaults({});
    }
  });

  test('reauth_required: the grant was revoked at the IdP; 424 pointing at the connection', async () => {
    const c = await env.connect('hank@example.com', ['items:read']);
    const key = await createAgent([{ connection: c, scopes: ['items:read'] }], 'hank');
    const t = await env.warrant.tokens.getFreshToken(c);
    await env.sandbox.revokeGrantOf(t.accessToken);
    const body = await problem(await call(key, `/v1/proxy/${c}/items`), 'reauth_required', 424);
    // The connection in the admin API, not a re-connect link: agents never hold a capability.
    assert.equal(body.reauth_url, `${env.warrant.config.publicUrl}/v1/connections/${c}`);
  });

  test('token export and lease for stateless agents; never a refresh token', async () => {
    await problem(await call(readerKey, `/v1/connections/${conn}/token`), 'policy_denied', 403);
    const res = await call(writerKey, `/v1/connections/${conn}/token?min_ttl=2`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const body = await res.json();
    assert.deepEqual(Object.keys(body).sort(), ['access_token', 'connection', 'expires_at', 'token_type']);
    assert.ok(Date.parse(body.expires_at) - Date.now() > 2_000);
    const lease = await call(readerKey, `/v1/connections/${conn}/lease`, { method: 'POST', body: JSON.stringify({ min_ttl: 3 }), headers: { 'content-type': 'application/json' } });
    const leased = await lease.json();
    assert.equal(lease.status, 200, JSON.stringify(leased));
    assert.equal(leased.access_token, undefined, 'no token without token_export');
    assert.ok(Date.parse(leased.expires_at) - Date.now() > 2_500);
    const bad = await call(readerKey, `/v1/connections/${conn}/lease`, { method: 'POST', body: JSON.stringify({ min_ttl: -1 }), headers: { 'content-type': 'application/json' } });
    assert.equal((await problem(bad, 'invalid_request', 400)).field, 'body.min_ttl');
  });

  test('every proxied call is in the audit log with agent, method, path, scope, status, retries, refreshed and duration', async () => {
    const res = await call(readerKey, `/v1/proxy/${conn}/items?secret_query=shh`);
    const requestId = res.headers.get('warrant-request-id');
    await res.arrayBuffer();
    const entry = await eventually(async () => {
      await env.warrant.auditQueue.flush();
      return (await env.warrant.audit.query({ type: 'proxy.call', limit: 1000 })).find((e) => e.data.request_id === requestId);
    });
    assert.equal(entry.subject, `connection:${conn}`);
    assert.match(entry.actor, /^agent:/);
    assert.deepEqual(
      { method: entry.data.method, path: entry.data.path, scope: entry.data.scope, status: entry.data.status, retries: entry.data.retries },
      { method: 'GET', path: '/items', scope: 'items:read', status: 200, retries: 0 },
    );
    assert.equal(typeof entry.data.duration_ms, 'number');
    assert.ok(!JSON.stringify(entry).includes('shh'), 'query values are not audited');
  });

  test('fail closed: when the audit log cannot be written, the proxy refuses new calls', async () => {
    await env.warrant.auditQueue.flush();
    await env.warrant.store.db.schema.alterTable('audit_events').renameTo('audit_events_away').execute();
    try {
      // Calls go through until the queue has failed enough writes to know the store is gone.
      await eventually(async () => {
        const res = await call(readerKey, `/v1/proxy/${conn}/items`);
        await res.arrayBuffer();
        return res.status === 503;
      }, 15_000, 100);
      await problem(await call(readerKey, `/v1/proxy/${conn}/items`), 'unavailable', 503);
    } finally {
      await env.warrant.store.db.schema.alterTable('audit_events_away').renameTo('audit_events').execute();
    }
    await eventually(async () => {
      const res = await call(readerKey, `/v1/proxy/${conn}/items`);
      await res.arrayBuffer();
      return res.status === 200;
    }, 15_000, 200);
  });
});
