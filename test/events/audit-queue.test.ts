import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { createAuditQueue } from '../../src/events/index.ts';
import type { AuditInput, AuditLog } from '../../src/events/index.ts';

function fakeAudit(failing: () => boolean) {
  const written: AuditInput[][] = [];
  const audit = {
    async append(inputs: AuditInput | AuditInput[]) {
      if (failing()) throw new Error('store down');
      written.push(Array.isArray(inputs) ? inputs : [inputs]);
      return [];
    },
  } as unknown as AuditLog;
  return { audit, written };
}

test('entries are written in batches, in order', async () => {
  const { audit, written } = fakeAudit(() => false);
  const q = createAuditQueue({ audit, logger: pino({ level: 'silent' }), batchSize: 10, flushIntervalMs: 5 });
  for (let i = 0; i < 25; i++) q.reserve()!.commit({ type: 't', actor: 'a', data: { i } });
  await q.close();
  assert.deepEqual(written.map((b) => b.length), [10, 10, 5]);
  assert.deepEqual(written.flat().map((e) => e.data!.i), Array.from({ length: 25 }, (_, i) => i));
});

test('a full queue refuses reservations up front (fail closed), and frees slots as it drains', async () => {
  const { audit } = fakeAudit(() => false);
  const q = createAuditQueue({ audit, logger: pino({ level: 'silent' }), capacity: 3, flushIntervalMs: 1_000 });
  const slots = [q.reserve(), q.reserve(), q.reserve()];
  assert.ok(slots.every(Boolean));
  assert.equal(q.reserve(), undefined);
  slots[0]!.cancel();
  assert.ok(q.reserve());
  await q.close();
});

test('while writes fail the queue refuses new calls, keeps what it holds, and recovers', async () => {
  let down = true;
  const { audit, written } = fakeAudit(() => down);
  const q = createAuditQueue({ audit, logger: pino({ level: 'silent' }), flushIntervalMs: 1, failuresBeforeRefusing: 2 });
  q.reserve()!.commit({ type: 'kept', actor: 'a' });
  const deadline = Date.now() + 5_000;
  while (q.healthy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(q.healthy(), false);
  assert.equal(q.reserve(), undefined);
  down = false;
  while (!q.healthy() && Date.now() < deadline + 5_000) await new Promise((r) => setTimeout(r, 20));
  assert.equal(q.healthy(), true);
  assert.deepEqual(written.flat().map((e) => e.type), ['kept']);
  await q.close();
});

// Regression (security review, medium 7): the queue had one shared capacity, reserved before a
// proxied body was read; one agent with stalled bodies held every slot and every other agent's
// call answered 503. Each key (agent) now holds at most its share.
test('one key holds at most its share of the capacity; other keys still reserve', async () => {
  const { audit } = fakeAudit(() => false);
  const q = createAuditQueue({ audit, logger: pino({ level: 'silent' }), capacity: 300, flushIntervalMs: 1_000 });
  assert.equal(q.perKeyCapacity, 15, 'a twentieth of the capacity by default');
  const held = [];
  for (let i = 0; i < 300; i++) {
    const slot = q.reserve('agent-a');
    if (slot) held.push(slot);
  }
  assert.equal(held.length, 15);
  assert.equal(q.hasShareLeft('agent-a'), false);
  assert.ok(q.reserve('agent-b'), 'another agent is not starved');
  assert.ok(q.reserve(), 'nor is a call without a key');
  held[0]!.commit({ type: 't', actor: 'agent:a' });
  held[1]!.cancel();
  held[1]!.cancel(); // twice: given back once
  assert.equal(q.hasShareLeft('agent-a'), true);
  assert.ok(q.reserve('agent-a'));
  assert.ok(q.reserve('agent-a'));
  assert.equal(q.reserve('agent-a'), undefined);
  await q.close();
});

test('the share is configurable, and a full queue still refuses every key', async () => {
  const { audit } = fakeAudit(() => false);
  const q = createAuditQueue({ audit, logger: pino({ level: 'silent' }), capacity: 4, perKeyCapacity: 3, flushIntervalMs: 1_000 });
  const a = [q.reserve('a'), q.reserve('a'), q.reserve('a'), q.reserve('a')];
  assert.deepEqual(a.map(Boolean), [true, true, true, false]);
  assert.ok(q.reserve('b'));
  assert.equal(q.reserve('c'), undefined, 'the queue as a whole is full');
  assert.equal(q.hasShareLeft('c'), true, 'so it is not a question of share');
  await q.close();
});
