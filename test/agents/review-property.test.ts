import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { narrowGrants, parseSince, reviewGrant } from '../../src/agents/index.ts';
import type { GrantRow } from '../../src/store/index.ts';

// The laws of a grant's review, whatever the audit holds: suggested ⊆ granted; used ∪ unused =
// granted and they are disjoint; the suggestion is the used set (or everything when the token was
// exported); and a suggestion is always accepted by PATCH as a narrowing, never refused as a widening.

const scope: fc.Arbitrary<string> = fc.constantFrom('a:read', 'a:write', 'b:read', 'b:write', 'admin', 'offline_access', 'x');
const granted = fc.uniqueArray(scope, { minLength: 1, maxLength: 7 });
const usage = fc.dictionary(scope, fc.nat({ max: 5 }));

test('review laws: suggested ⊆ granted, used ∪ unused = granted, used ∩ unused = ∅', () => {
  fc.assert(
    fc.property(granted, usage, fc.nat({ max: 2 }), (g, uses, exports) => {
      const r = reviewGrant(g, { uses: new Map(Object.entries(uses)), tokenExports: exports }, { connection: 'con_1' });
      const set = (xs: string[]) => new Set(xs);
      assert.deepEqual(r.granted, g);
      assert.ok(r.suggested.every((s) => g.includes(s)), 'suggested ⊆ granted');
      assert.deepEqual(set([...r.used, ...r.unused]), set(g), 'used ∪ unused = granted');
      assert.ok(r.used.every((s) => !r.unused.includes(s)), 'used ∩ unused = ∅');
      assert.ok(r.used.every((s) => (uses[s] ?? 0) > 0) && r.unused.every((s) => !(uses[s] ?? 0)), 'used means at least one call');
      if (exports > 0) assert.deepEqual(r.suggested, g);
      else assert.deepEqual(r.suggested, r.used);
      assert.equal(r.action, r.suggested.length === 0 ? 'remove' : r.suggested.length === g.length ? 'keep' : 'narrow');
      // The suggestion keeps the grant's order: the policy picks the first granted scope that matches.
      assert.deepEqual(r.suggested, g.filter((s) => r.suggested.includes(s)));
    }),
    { numRuns: 500 },
  );
});

test('a suggestion always passes PATCH as a narrowing', () => {
  fc.assert(
    fc.property(granted, usage, (g, uses) => {
      const r = reviewGrant(g, { uses: new Map(Object.entries(uses)) }, { connection: 'con_1' });
      const row: GrantRow = { id: 'gnt_1', agent_id: 'agt_1', connection_id: 'con_1', scopes: JSON.stringify(g), token_export: 0, created_at: 0 };
      if (!r.suggested.length) return;
      const out = narrowGrants([row], [{ connection: 'con_1', scopes: r.suggested }], false);
      assert.deepEqual(out.kept[0]!.scopes, r.suggested);
      assert.equal(out.narrowed.length, r.action === 'narrow' ? 1 : 0);
    }),
    { numRuns: 300 },
  );
});

test('narrowGrants refuses any scope outside the grant', () => {
  fc.assert(
    fc.property(granted, fc.uniqueArray(scope, { minLength: 1, maxLength: 7 }), (held, asked) => {
      const row: GrantRow = { id: 'gnt_1', agent_id: 'agt_1', connection_id: 'con_1', scopes: JSON.stringify(held), token_export: 0, created_at: 0 };
      const widens = asked.some((s) => !held.includes(s));
      try {
        const out = narrowGrants([row], [{ connection: 'con_1', scopes: asked }], false);
        assert.ok(!widens, 'a widening went through');
        assert.ok(out.kept[0]!.scopes.every((s) => held.includes(s)));
      } catch (err) {
        assert.ok(widens, `a narrowing was refused: ${(err as Error).message}`);
        assert.equal((err as { members?: { field?: string } }).members?.field, 'grants[0].scopes');
      }
    }),
    { numRuns: 300 },
  );
});

test('since: durations and date-times back from now; anything else is invalid_request on `since`', () => {
  const now = Date.parse('2025-06-01T00:00:00Z');
  assert.equal(parseSince(undefined, now), now - 30 * 86_400_000);
  assert.equal(parseSince('30d', now), now - 30 * 86_400_000);
  assert.equal(parseSince('12h', now), now - 12 * 3_600_000);
  assert.equal(parseSince('2w', now), now - 14 * 86_400_000);
  assert.equal(parseSince('P1DT6H', now), now - 30 * 3_600_000);
  assert.equal(parseSince('PT90M', now), now - 90 * 60_000);
  assert.equal(parseSince('2025-05-01T00:00:00Z', now), Date.parse('2025-05-01T00:00:00Z'));
  assert.equal(parseSince('2025-05-01', now), Date.parse('2025-05-01'));
  for (const bad of ['P', 'PT', '0d', 'P0D', '-1d', '1y', '2025-13-01T00:00:00Z', '2025-07-01T00:00:00Z', '40000d', 'x'.repeat(64)]) {
    assert.throws(() => parseSince(bad, now), (err: { code?: string; members?: { field?: string } }) => err.code === 'invalid_request' && err.members?.field === 'since', bad);
  }
});
