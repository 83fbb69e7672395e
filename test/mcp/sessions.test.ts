import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSessionTable, newSessionId } from '../../src/mcp/sessions.ts';

function table(opts: { maxSessions?: number; maxSessionsPerAgent?: number; idleMs?: number } = {}) {
  let now = 1_000_000;
  const closed: [string, string][] = [];
  const t = createSessionTable<string>({
    maxSessions: opts.maxSessions ?? 3,
    maxSessionsPerAgent: opts.maxSessionsPerAgent ?? 2,
    idleMs: opts.idleMs ?? 60_000,
    now: () => now,
    onClose: (v, reason) => closed.push([v as string, reason]),
  });
  return { t, closed, advance: (ms: number) => (now += ms) };
}

test('a session is bound to the agent that opened it: another agent gets nothing for its id', () => {
  const { t } = table();
  const id = newSessionId();
  assert.ok(id.length >= 43, '256 random bits');
  t.add(id, 'agt_a', 'A');
  assert.equal(t.get(id, 'agt_a')?.value, 'A');
  assert.equal(t.get(id, 'agt_b'), undefined);
  assert.equal(t.heldByOther(id, 'agt_b'), true);
  assert.equal(t.get(id, 'agt_a')?.value, 'A', 'the refused use did not end the owner’s session');
  t.close();
});

test('an idle session is closed; a used one stays', () => {
  const { t, closed, advance } = table({ idleMs: 60_000 });
  t.add('s1', 'agt_a', 'one');
  t.add('s2', 'agt_a', 'two');
  advance(40_000);
  t.get('s2', 'agt_a');
  advance(30_000);
  assert.equal(t.get('s1', 'agt_a'), undefined);
  assert.equal(t.get('s2', 'agt_a')?.value, 'two');
  assert.deepEqual(closed, [['one', 'idle']]);
  t.close();
});

test("sessions are bounded: per agent (its least recently used goes) and per instance (refused)", () => {
  const { t, closed, advance } = table({ maxSessions: 3, maxSessionsPerAgent: 2 });
  t.add('a1', 'agt_a', 'a1');
  advance(1);
  t.add('a2', 'agt_a', 'a2');
  advance(1);
  t.get('a1', 'agt_a');
  assert.equal(t.makeRoom('agt_a'), true);
  assert.deepEqual(closed, [['a2', 'evicted']], "the agent's least recently used session made room");
  t.add('a3', 'agt_a', 'a3');
  assert.equal(t.makeRoom('agt_b'), true);
  t.add('b1', 'agt_b', 'b1');
  assert.equal(t.size(), 3);
  assert.equal(t.makeRoom('agt_c'), false, 'the instance is full: a new agent is refused, nobody is evicted for it');
  assert.equal(t.size(), 3);
  t.close();
  assert.equal(t.size(), 0);
  assert.ok(closed.some(([, r]) => r === 'shutdown'));
});
