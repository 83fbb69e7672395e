import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildApp } from '../../src/http/app.ts';
import { clientKey } from '../../src/http/auth.ts';
import { createMetrics } from '../../src/http/metrics.ts';
import { captureLogger } from '../helpers/app.ts';

// Reproduces security review finding 13 (rate limit): admin authentication could be tried without
// limit, each miss also costing a hash and (at most every 100 ms) a store read.

const TOKEN = 'the-admin-token-0123456789abcdef';

async function app(clock: { t: number }) {
  return buildApp({
    logger: captureLogger('silent').logger,
    metrics: createMetrics(),
    catalog: new Map(),
    ping: async () => undefined,
    verifyAdminToken: (t) => t === TOKEN,
    adminAuthLimit: { failuresPerSecond: 10, failureBurst: 20, now: () => clock.t },
  });
}

const call = (a: Awaited<ReturnType<typeof app>>, token: string, ip = '127.0.0.1', headers: Record<string, string> = {}) =>
  a.inject({ url: '/v1/providers', remoteAddress: ip, headers: { authorization: `Bearer ${token}`, ...headers } });

test('failed admin authentications past the burst answer 429 rate_limited with Retry-After; the right token is never slowed', async () => {
  const clock = { t: 1_000_000 };
  const a = await app(clock);
  try {
    for (let i = 0; i < 20; i++) assert.equal((await call(a, `wrong-${i}`)).statusCode, 401, `attempt ${i + 1}`);
    const limited = await call(a, 'wrong-21', '127.0.0.1', { 'x-forwarded-for': '203.0.113.9' });
    assert.equal(limited.statusCode, 429, 'a forwarding header does not buy another budget');
    assert.equal(limited.headers['retry-after'], '1');
    assert.equal(limited.json().code, 'rate_limited');
    assert.equal(limited.json().limit, 'admin_auth');
    assert.ok(!limited.body.includes('wrong-21'), 'the attempted token is not echoed');

    // The admin, from the same address, in the middle of it: let through at once.
    for (let i = 0; i < 5; i++) assert.equal((await call(a, TOKEN)).statusCode, 200);
    // Another client is not affected.
    assert.equal((await call(a, 'wrong', '192.0.2.7')).statusCode, 401);

    // Tokens come back at the rate: 100 ms buys one attempt.
    clock.t += 100;
    assert.equal((await call(a, 'wrong-22')).statusCode, 401);
    assert.equal((await call(a, 'wrong-23')).statusCode, 429);
    clock.t += 2_000;
    for (let i = 0; i < 20; i++) assert.equal((await call(a, `again-${i}`)).statusCode, 401);
    assert.equal((await call(a, 'again-21')).statusCode, 429);
  } finally {
    await a.close();
  }
});

test('a missing Authorization header counts as a failure too', async () => {
  const clock = { t: 0 };
  const a = await app(clock);
  try {
    for (let i = 0; i < 20; i++) assert.equal((await a.inject({ url: '/v1/providers' })).statusCode, 401);
    assert.equal((await a.inject({ url: '/v1/providers' })).statusCode, 429);
  } finally {
    await a.close();
  }
});

test('clients are counted by address; IPv6 by its /64, IPv4-mapped as IPv4', () => {
  assert.equal(clientKey('203.0.113.9'), '203.0.113.9');
  assert.equal(clientKey('::ffff:203.0.113.9'), '203.0.113.9');
  assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(clientKey('::1'), '0:0:0:0::/64');
  assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
});
