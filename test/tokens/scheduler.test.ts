import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { openTestStore, storeKinds, type TestStore } from '../helpers/stores.ts';
import { backoffMs, isFresh, refreshDueAt, skewMs } from '../../src/tokens/index.ts';

const timing = { refreshSkewSeconds: 300, refreshSkewFraction: 0.25 };

test('skew: 300 s for long tokens, a quarter of the life for short ones', () => {
  assert.equal(skewMs(86_400_000, timing), 300_000);
  assert.equal(skewMs(21_600_000, timing), 300_000);
  assert.equal(skewMs(300_000, timing), 75_000);
  assert.equal(skewMs(4_000, timing), 1_000);
  assert.equal(skewMs(null, timing), 300_000);
});

test('a 5-minute token is refreshed well before 0 s, never after (property)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1_000, max: 90_000_000 }), fc.double({ min: 0, max: 1, noNaN: true }), (lifetime, r) => {
      const now = 1_000_000;
      const due = refreshDueAt(now, now + lifetime, lifetime, timing, undefined, () => r)!;
      assert.ok(due < now + lifetime, 'due before expiry');
      assert.ok(now + lifetime - due >= skewMs(lifetime, timing), 'at least the skew ahead');
      assert.ok(!isFresh(due, now + lifetime, lifetime, 0, timing) || r > 0, 'due means not fresh (jitter aside)');
    }),
  );
});

test('idle refresh tokens are kept alive at half the idle timeout', () => {
  assert.equal(refreshDueAt(0, null, null, timing, 7_776_000), 3_888_000_000);
  assert.equal(refreshDueAt(0, 10_000_000_000, 10_000_000_000, timing, 600, () => 0), 300_000);
});

test('backoff has full jitter within [base/2, cap] and grows (property)', () => {
  const b = { baseMs: 1_000, capMs: 60_000 };
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (n, r) => {
      const d = backoffMs(n, b, () => r);
      assert.ok(d >= 500 && d <= 60_000);
      assert.ok(d <= Math.min(60_000, 1_000 * 2 ** (n - 1)));
    }),
  );
});

for (const kind of storeKinds) {
  describe(`scheduler claims on ${kind.name}`, { skip: kind.skip }, () => {
    let t: TestStore;
    before(async () => {
      t = await openTestStore(kind.name);
      const now = Date.now();
      for (let i = 0; i < 60; i++) {
        await t.store.connections.insert({
          id: `con_${String(i).padStart(3, '0')}`,
          provider: 'acme',
          environment: 'production',
          owner: 'o',
          status: i % 10 === 9 ? 'reauth_required' : 'active',
          scopes: '[]',
          requested_scopes: '[]',
          params: '{}',
          expires_at: now + 1000,
          refresh_due_at: i < 40 ? now - 1000 + i : now + 600_000,
          last_refreshed_at: now,
          last_error: null,
          next_attempt_at: null,
          created_at: now,
          updated_at: now,
        });
      }
    });
    after(async () => t?.cleanup());

    test('only due, refreshable rows are claimed, oldest first, and a claim pushes them a lease ahead', async () => {
      const now = Date.now();
      const first = await t.store.connections.claimDue(now, 10, 60_000, t.store.dialect);
      assert.equal(first.length, 10);
      assert.deepEqual(first.map((r) => r.id).sort(), ['con_000', 'con_001', 'con_002', 'con_003', 'con_004', 'con_005', 'con_006', 'con_007', 'con_008', 'con_010']);
      assert.ok(first.every((r) => r.refresh_due_at === now + 60_000));
    });

    test('concurrent claims get disjoint sets: no connection is claimed twice', async () => {
      const now = Date.now();
      const claims = await Promise.all(Array.from({ length: 4 }, () => t.store.connections.claimDue(now, 10, 60_000, t.store.dialect)));
      const ids = claims.flat().map((r) => r.id);
      assert.equal(new Set(ids).size, ids.length);
      // 40 due, 4 of them reauth_required, 10 claimed before: 26 left.
      assert.equal(ids.length, 26);
      assert.deepEqual(await t.store.connections.claimDue(now, 10, 60_000, t.store.dialect), []);
    });
  });
}
