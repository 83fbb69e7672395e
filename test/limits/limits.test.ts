import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { createLimits, createMemoryBuckets, createRedisBuckets, type LimitSettings } from '../../src/limits/index.ts';
import { isWarrantError } from '../../src/errors/index.ts';
import { skipWithoutRedis, testRedisUrl } from '../helpers/stores.ts';

// The limits behind `429 rate_limited` (security review, medium 7: no per-agent rate or concurrency
// limit existed, so one agent could take the whole proxy).

const off: LimitSettings = { agentRatePerSecond: 0, agentBurst: 1, agentConcurrency: 0, connectionRatePerSecond: 0, connectionBurst: 1, connectionConcurrency: 0 };

function fakeClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function refusal(fn: () => unknown) {
  try {
    fn();
  } catch (err) {
    assert.ok(isWarrantError(err, 'rate_limited'), String(err));
    return err.members as { limit: string; retry_after: number };
  }
  assert.fail('expected rate_limited');
}

describe('in-process token buckets', () => {
  test('a burst, then one token per 1/rate seconds; the refusal says how long to wait', () => {
    const clock = fakeClock();
    const b = createMemoryBuckets(clock);
    const spec = [{ key: 'a:1', ratePerSecond: 10, burst: 3 }];
    assert.equal(b.take(spec), null);
    assert.equal(b.take(spec), null);
    assert.equal(b.take(spec), null);
    assert.deepEqual(b.take(spec), { waitMs: 100, index: 0 });
    clock.advance(50);
    assert.deepEqual(b.take(spec), { waitMs: 50, index: 0 });
    clock.advance(50);
    assert.equal(b.take(spec), null);
    clock.advance(10_000);
    for (let i = 0; i < 3; i++) assert.equal(b.take(spec), null, 'refilled up to the burst, no further');
    assert.notEqual(b.take(spec), null);
  });

  test('several buckets: a token from each or from none', () => {
    const clock = fakeClock();
    const b = createMemoryBuckets(clock);
    const agent = { key: 'a:1', ratePerSecond: 1, burst: 5 };
    const connection = { key: 'c:1', ratePerSecond: 1, burst: 1 };
    assert.equal(b.take([agent, connection]), null);
    assert.deepEqual(b.take([agent, connection]), { waitMs: 1000, index: 1 });
    // The refused take cost the agent bucket nothing: 4 tokens are left in it.
    for (let i = 0; i < 4; i++) assert.equal(b.take([agent]), null);
    assert.notEqual(b.take([agent]), null);
  });

  test('property: over any schedule, admitted calls never exceed burst + rate × elapsed', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 200 }), (rate, burst, gaps) => {
        const clock = fakeClock();
        const b = createMemoryBuckets(clock);
        const start = clock.now();
        let admitted = 0;
        for (const gap of gaps) {
          clock.advance(gap);
          if (b.take([{ key: 'k', ratePerSecond: rate, burst }]) === null) admitted++;
          assert.ok(admitted <= burst + (rate * (clock.now() - start)) / 1000 + 1e-9);
        }
      }),
    );
  });
});

describe('createLimits', () => {
  test('agent rate: 429 rate_limited with retry_after; another agent is unaffected', () => {
    const clock = fakeClock();
    const limits = createLimits({ settings: { ...off, agentRatePerSecond: 2, agentBurst: 2 }, now: clock.now });
    (limits.admit('agt_a') as { release(): void }).release();
    (limits.admit('agt_a') as { release(): void }).release();
    const r = refusal(() => limits.admit('agt_a'));
    assert.equal(r.limit, 'agent_rate');
    assert.equal(r.retry_after, 1);
    assert.ok(limits.admit('agt_b'));
  });

  test('concurrency: the cap counts calls in flight and frees on release (once)', () => {
    const limits = createLimits({ settings: { ...off, agentConcurrency: 2, connectionConcurrency: 3 } });
    const p1 = limits.admit('a', 'con_1') as { release(): void };
    const p2 = limits.admit('a', 'con_1') as { release(): void };
    assert.equal(refusal(() => limits.admit('a', 'con_1')).limit, 'agent_concurrency');
    const p3 = limits.admit('b', 'con_1') as { release(): void };
    assert.equal(refusal(() => limits.admit('c', 'con_1')).limit, 'connection_concurrency');
    assert.ok(limits.admit('c'), 'not charged to a connection: only the agent cap applies');
    p1.release();
    p1.release();
    assert.equal(limits.inFlight('agent', 'a'), 1);
    assert.equal(limits.inFlight('connection', 'con_1'), 2);
    assert.ok(limits.admit('a', 'con_1'));
    p2.release();
    p3.release();
  });

  test('a refused rate gives back the concurrency it took', () => {
    const limits = createLimits({ settings: { ...off, agentConcurrency: 1, connectionRatePerSecond: 1, connectionBurst: 1 } });
    (limits.admit('a', 'con') as { release(): void }).release();
    assert.equal(refusal(() => limits.admit('a', 'con')).limit, 'connection_rate');
    assert.equal(limits.inFlight('agent', 'a'), 0);
  });

  test('0 turns every limit off', () => {
    const limits = createLimits({ settings: off });
    for (let i = 0; i < 1_000; i++) limits.admit('a', 'c');
    assert.equal(limits.inFlight('agent', 'a'), 0, 'nothing counted');
  });
});

describe('Redis buckets', { skip: skipWithoutRedis }, () => {
  test('two instances share one bucket per key (one EVALSHA a call)', async () => {
    const prefix = `warrant-test:${randomBytes(6).toString('hex')}:`;
    const a = createRedisBuckets({ url: testRedisUrl!, prefix, fallback: createMemoryBuckets() });
    const b = createRedisBuckets({ url: testRedisUrl!, prefix, fallback: createMemoryBuckets() });
    try {
      const spec = [{ key: 'a:agt_1', ratePerSecond: 0.5, burst: 4 }];
      const verdicts = [];
      for (let i = 0; i < 6; i++) verdicts.push(await (i % 2 ? a : b).take(spec));
      assert.deepEqual(verdicts.map((v) => v === null), [true, true, true, true, false, false]);
      const refused = verdicts[4]!;
      assert.equal(refused.index, 0);
      assert.ok(refused.waitMs > 1000 && refused.waitMs <= 2000, String(refused.waitMs));
      // All or none across keys, as in memory.
      const both = [
        { key: 'a:agt_2', ratePerSecond: 1, burst: 3 },
        { key: 'c:con_2', ratePerSecond: 1, burst: 1 },
      ];
      assert.equal(await a.take(both), null);
      assert.equal((await b.take(both))?.index, 1);
      assert.equal(await a.take([both[0]!]), null);
      assert.equal(await b.take([both[0]!]), null);
      assert.notEqual(await a.take([both[0]!]), null);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('Redis unreachable: the in-process fallback answers, quickly, and the limit still holds per instance', async () => {
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as net.AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const fallback = createMemoryBuckets();
    const buckets = createRedisBuckets({ url: `redis://127.0.0.1:${port}`, fallback, timeoutMs: 200 });
    try {
      const spec = [{ key: 'a:x', ratePerSecond: 1, burst: 2 }];
      const started = Date.now();
      const verdicts = [await buckets.take(spec), await buckets.take(spec), await buckets.take(spec)];
      assert.deepEqual(verdicts.map((v) => v === null), [true, true, false]);
      assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
    } finally {
      await buckets.close();
    }
  });
});

test('settings: defaults, a burst left unset is twice the rate, 0 turns a limit off, bad values are named', async () => {
  const { loadConfig, ConfigError } = await import('../../src/config/index.ts');
  const d = loadConfig({});
  assert.deepEqual(
    [d.agentRatePerSecond, d.agentBurst, d.agentConcurrency, d.connectionRatePerSecond, d.connectionBurst, d.connectionConcurrency],
    [100, 200, 64, 200, 400, 128],
  );
  assert.equal(d.proxyBodyLimitBytes, 100 * 1024 * 1024);
  assert.equal(d.proxyIdleTimeoutMs, 30_000);
  const c = loadConfig({ WARRANT_AGENT_RATE_PER_SECOND: '2.5', WARRANT_CONNECTION_RATE_PER_SECOND: '0', WARRANT_CONNECTION_BURST: '7', WARRANT_AGENT_CONCURRENCY: '0' });
  assert.deepEqual([c.agentRatePerSecond, c.agentBurst, c.connectionRatePerSecond, c.connectionBurst, c.agentConcurrency], [2.5, 5, 0, 7, 0]);
  assert.throws(() => loadConfig({ WARRANT_AGENT_BURST: '0' }), (e: Error) => e instanceof ConfigError && /WARRANT_AGENT_BURST/.test(e.message));
  assert.throws(() => loadConfig({ WARRANT_PROXY_IDLE_TIMEOUT_MS: '-1' }), (e: Error) => e instanceof ConfigError && /WARRANT_PROXY_IDLE_TIMEOUT_MS/.test(e.message));
});
