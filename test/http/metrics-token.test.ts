import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestWarrant } from '../helpers/app.ts';
import type { Warrant } from '../../src/warrant.ts';

// Reproduces security review finding 15: `/metrics` (provider ids, failure counts) answered anyone,
// even with WARRANT_METRICS_TOKEN set.

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';

describe('/metrics with WARRANT_METRICS_TOKEN', () => {
  let warrant: Warrant;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ warrant, cleanup } = await startTestWarrant({ WARRANT_METRICS_TOKEN: METRICS_TOKEN }));
  });
  after(async () => cleanup());

  test('wants the token as a bearer token', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong-token-0123456789abcdef' }, { authorization: `Basic ${Buffer.from(`x:${METRICS_TOKEN}`).toString('base64')}` }]) {
      const res = await warrant.app.inject({ url: '/metrics', headers });
      assert.equal(res.statusCode, 401);
      assert.equal(res.headers['www-authenticate'], 'Bearer realm="warrant"');
      assert.doesNotMatch(res.body, /warrant_http_request_duration_seconds/);
      assert.ok(!res.body.includes(METRICS_TOKEN));
    }
    const ok = await warrant.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    assert.equal(ok.statusCode, 200);
    assert.match(ok.body, /warrant_http_request_duration_seconds/);
  });

  test('the admin token is not the metrics token', async () => {
    const { ADMIN_TOKEN } = await import('../helpers/app.ts');
    assert.equal((await warrant.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).statusCode, 401);
  });

  test('/openapi.json and the health checks stay open (they carry no data)', async () => {
    assert.equal((await warrant.app.inject('/openapi.json')).statusCode, 200);
    assert.equal((await warrant.app.inject('/healthz')).statusCode, 200);
    assert.equal((await warrant.app.inject('/readyz')).statusCode, 200);
  });
});

describe('/metrics without WARRANT_METRICS_TOKEN', () => {
  test('is open, as DESIGN.md says', async () => {
    const { warrant, cleanup } = await startTestWarrant();
    try {
      assert.equal((await warrant.app.inject('/metrics')).statusCode, 200);
    } finally {
      await cleanup();
    }
  });
});
