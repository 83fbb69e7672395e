import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_TOKEN, startTestWarrant } from '../helpers/app.ts';
import type { Warrant } from '../../src/warrant.ts';

describe('http app', () => {
  let warrant: Warrant;
  let logs: Awaited<ReturnType<typeof startTestWarrant>>['logs'];
  let cleanup: () => Promise<void>;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

  before(async () => {
    ({ warrant, logs, cleanup } = await startTestWarrant());
  });
  after(async () => cleanup());

  test('/healthz and /readyz answer ok', async () => {
    assert.deepEqual((await warrant.app.inject('/healthz')).json(), { status: 'ok' });
    const ready = await warrant.app.inject('/readyz');
    assert.equal(ready.statusCode, 200);
  });

  test('/metrics exposes prometheus text with request durations', async () => {
    await warrant.app.inject('/healthz');
    const res = await warrant.app.inject('/metrics');
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'] as string, /text\/plain/);
    assert.match(res.body, /warrant_http_request_duration_seconds_bucket\{.*route="\/healthz"/);
  });

  test('admin routes refuse a missing or wrong token with agent-readable problem details', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong-token-but-long-enough' }, { authorization: 'Basic Zm9vOmJhcg==' }]) {
      const res = await warrant.app.inject({ url: '/v1/providers', headers });
      assert.equal(res.statusCode, 401);
      assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.equal(res.headers['www-authenticate'], 'Bearer realm="warrant"');
      const body = res.json();
      assert.equal(body.code, 'admin_unauthenticated');
      assert.equal(body.status, 401);
      assert.ok(body.type && body.title);
    }
  });

  test('the provider catalog is listed for the admin, without secrets', async () => {
    const res = await warrant.app.inject({ url: '/v1/providers', headers: admin });
    assert.equal(res.statusCode, 200);
    const { providers } = res.json();
    assert.ok(providers.length >= 25);
    assert.ok(!res.body.includes('"client_secret"') && !res.body.includes('${env:'));
    for (const p of providers) {
      const one = await warrant.app.inject({ url: `/v1/providers/${p.id}`, headers: admin });
      assert.equal(one.statusCode, 200);
      assert.ok(!one.body.includes('"client_secret"') && !one.body.includes('"client_id"') && !one.body.includes('${env:'), p.id);
    }
  });

  test('invalid input answers invalid_request naming the field', async () => {
    const res = await warrant.app.inject({ url: '/v1/providers/Not_Valid', headers: admin });
    assert.equal(res.statusCode, 400);
    const body = res.json();
    assert.equal(body.code, 'invalid_request');
    assert.equal(body.field, 'params.id');
    assert.match(body.detail, /^params\.id: /);
  });

  test('unknown routes and providers are not_found problems', async () => {
    // Not hex: the request id in `instance` is hex and may contain any short hex run.
    const res = await warrant.app.inject({ url: '/v1/nothing-here?token=zqxvzz', headers: admin });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().code, 'not_found');
    assert.ok(!res.body.includes('zqxvzz'), 'query values are not echoed');
    const p = await warrant.app.inject({ url: '/v1/providers/does-not-exist', headers: admin });
    assert.equal(p.json().code, 'not_found');
  });

  test('/openapi.json documents the routes from their schemas', async () => {
    const res = await warrant.app.inject('/openapi.json');
    const doc = res.json();
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths['/v1/providers']);
    assert.ok(doc.paths['/v1/providers/{id}'].get.parameters.some((p: { name: string }) => p.name === 'id'));
    assert.ok(doc.paths['/healthz']);
  });

  test('logs never contain the admin token or query values', async () => {
    await warrant.app.inject({ url: '/v1/providers?code=sekrit-code-123', headers: admin });
    const text = logs.text();
    assert.ok(text.length > 0, 'requests are logged');
    assert.ok(!text.includes(ADMIN_TOKEN));
    assert.ok(!text.includes('sekrit-code-123'));
  });
});
