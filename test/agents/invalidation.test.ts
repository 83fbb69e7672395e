import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { Redis } from 'ioredis';
import { createKeyInvalidations, type KeyInvalidations } from '../../src/agents/index.ts';
import { openTestStore, skipWithoutRedis, testRedisUrl, type TestStore } from '../helpers/stores.ts';
import { eventually } from '../helpers/lifecycle.ts';

// Key invalidations between instances (src/agents/invalidation.ts): through the store's generation
// always, through Redis pub/sub when configured. A regression here lets a revoked agent key keep
// working on another instance for the whole cache TTL.

const logger = pino({ level: 'silent' });

// One store for the file; every feed a test starts is stopped at the end.
let ts: TestStore;
const started: KeyInvalidations[] = [];
before(async () => {
  ts = await openTestStore('sqlite');
});
after(async () => {
  for (const i of started) await i.stop();
  await ts?.cleanup();
});

describe('agent key invalidations', () => {
  function instance(opts: { redis?: boolean; channel?: string } = {}) {
    const inv = createKeyInvalidations({
      store: ts.store,
      logger,
      now: Date.now,
      ...(opts.redis ? { redisUrl: testRedisUrl } : {}),
      options: { pollIntervalMs: 50, ...(opts.channel ? { channel: opts.channel } : {}) },
    });
    const seen: (string[] | undefined)[] = [];
    inv.subscribe((ids) => seen.push(ids));
    started.push(inv);
    return { inv, seen };
  }

  test('through the store: a publication on one instance drops every cached key on the others within the poll interval', async () => {
    const a = instance();
    const b = instance();
    await a.inv.start();
    await b.inv.start();
    await new Promise((r) => setTimeout(r, 120));
    assert.deepEqual(b.seen, [], 'nothing announced yet: nothing dropped');
    await a.inv.publish(['k1']);
    await eventually(() => b.seen.length > 0, 1_000, 10);
    assert.deepEqual(b.seen[0], undefined, 'the store carries no ids: every key goes');
    await a.inv.publish([]);
    const count = b.seen.length;
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(b.seen.length, count, 'an empty publication changes nothing');
  });

  test('through Redis: the ids themselves, at once; a malformed message drops every key', { skip: skipWithoutRedis }, async () => {
    const channel = `warrant:test:${randomBytes(6).toString('hex')}`;
    const a = instance({ redis: true, channel });
    const b = instance({ redis: true, channel });
    await a.inv.start();
    await b.inv.start();
    // The subscription is made in the background: wait until a publication gets through.
    await eventually(async () => {
      await a.inv.publish(['warm']);
      return b.seen.some((s) => s?.[0] === 'warm');
    }, 5_000, 100);
    b.seen.length = 0;
    await a.inv.publish(['k1', 'k2']);
    await eventually(() => b.seen.some((s) => s?.join() === 'k1,k2'), 1_000, 5);
    const raw = new Redis(testRedisUrl!);
    try {
      b.seen.length = 0;
      await raw.publish(channel, '{"not":"a list"}');
      await eventually(() => b.seen.length > 0, 1_000, 5);
      assert.equal(b.seen[0], undefined);
    } finally {
      raw.disconnect();
    }
  });
});

describe('connection invalidations and the fail safe', () => {
  test('connections travel on their own generation: keys are not dropped for them, nor the reverse', async () => {
    const make = () => {
      const inv = createKeyInvalidations({ store: ts.store, logger, now: Date.now, options: { pollIntervalMs: 50 } });
      started.push(inv);
      return inv;
    };
    const a = make();
    const b = make();
    const keys: (string[] | undefined)[] = [];
    const connections: (string[] | undefined)[] = [];
    b.subscribe((ids) => keys.push(ids));
    b.connections.subscribe((ids) => connections.push(ids));
    await a.start();
    await b.start();
    keys.length = connections.length = 0;
    await a.connections.publish(['con_1']);
    await eventually(() => connections.length > 0, 1_000, 10);
    await new Promise((r) => setTimeout(r, 120));
    assert.deepEqual(keys, [], 'a connection change drops no key');
    connections.length = 0;
    await a.publish(['k1']);
    await eventually(() => keys.length > 0, 1_000, 10);
    await new Promise((r) => setTimeout(r, 120));
    assert.deepEqual(connections, [], 'a key change drops no connection');
  });

  test('current() only while the generations are read: false when reads fail, true again once they succeed', async () => {
    let broken = false;
    const db = new Proxy(ts.store.db, {
      get(target, prop) {
        if (prop !== 'selectFrom') return Reflect.get(target, prop, target);
        if (broken) throw new Error('the store is away');
        return target.selectFrom.bind(target);
      },
    });
    const inv = createKeyInvalidations({ store: { settings: ts.store.settings, db }, logger, now: Date.now, options: { pollIntervalMs: 50, staleAfterMs: 200 } });
    started.push(inv);
    assert.equal(inv.current(), false, 'not before start');
    await inv.start();
    assert.equal(inv.current(), true);
    broken = true;
    await eventually(() => !inv.current(), 2_000, 10);
    assert.equal(inv.connections.current(), false, 'one freshness for both topics');
    broken = false;
    await eventually(() => inv.current(), 2_000, 10);
    await inv.stop();
    assert.equal(inv.current(), false, 'not after stop');
  });
});
