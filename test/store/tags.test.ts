import { describe, test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import fc from 'fast-check';
import { createAgentsRepo } from '../../src/agents/repo.ts';
import { tagPredicates } from '../../src/store/index.ts';
import { labelsMatch, tagColumns, parseLabelSelector, tagsOf, type Labels, type LabelSelector, type Tags, type TagFilter } from '../../src/util/tags.ts';
import { openTestStore, storeKinds, type TestStore } from '../helpers/stores.ts';

// Tags in the store, on both dialects: the label filters are dialect-specific SQL (json_extract /
// jsonb), so each rule is checked against the same rows on SQLite and on PostgreSQL.

for (const kind of storeKinds) {
  describe(`tags on ${kind.name}`, { skip: kind.skip }, () => {
    let t: TestStore;
    const now = Date.now();

    const connection = (id: string, tags: Partial<Tags> = {}) => ({
      id,
      provider: 'acme',
      environment: 'production',
      owner: 'alice@example.com',
      status: 'active' as const,
      scopes: '[]',
      requested_scopes: '[]',
      params: '{}',
      expires_at: null,
      refresh_due_at: null,
      last_refreshed_at: null,
      last_error: null,
      next_attempt_at: null,
      created_at: now,
      updated_at: now,
      ...tagColumns(tags),
    });

    const agent = (id: string, tags: Partial<Tags> = {}) => ({
      id,
      name: id,
      owner: 'alice@example.com',
      key_id: `k_${id}`,
      key_hash: `h_${id}`,
      status: 'active' as const,
      expires_at: null,
      last_used_at: null,
      created_at: now,
      revoked_at: null,
      oauth_client: null,
      ...tagColumns(tags),
    });

    const rows: [string, Partial<Tags>][] = [
      ['a', { end_user: 'u1', organization: 'org1', labels: { team: 'billing', env: 'prod', 'app.kind': 'x=y' } }],
      ['b', { end_user: 'u2', organization: 'org1', labels: { team: 'billing', env: 'staging' } }],
      ['c', { end_user: 'u1', organization: 'org2', labels: { team: 'search', empty: '' } }],
      ['d', {}],
    ];

    before(async () => {
      t = await openTestStore(kind.name);
      for (const [id, tags] of rows) await t.store.connections.insert(connection(`con_${id}`, tags));
      const agents = createAgentsRepo(t.store.db, t.store.dialect);
      for (const [id, tags] of rows) await agents.insert(agent(`agt_${id}`, tags), []);
    });
    after(async () => t?.cleanup());

    const cases: [string, TagFilter, string[]][] = [
      ['no filter', {}, ['a', 'b', 'c', 'd']],
      ['end_user', { end_user: 'u1' }, ['a', 'c']],
      ['organization', { organization: 'org1' }, ['a', 'b']],
      ['end_user and organization', { end_user: 'u1', organization: 'org1' }, ['a']],
      ['label key=value', { labels: [parseLabelSelector('team=billing')] }, ['a', 'b']],
      ['label key only (set, whatever its value)', { labels: [parseLabelSelector('env')] }, ['a', 'b']],
      ['a label set to the empty string is set', { labels: [parseLabelSelector('empty')] }, ['c']],
      ['key= matches the empty value only', { labels: [parseLabelSelector('empty=')] }, ['c']],
      ['every label selector must match', { labels: [parseLabelSelector('team=billing'), parseLabelSelector('env=prod')] }, ['a']],
      ['a value holding = and a key holding .', { labels: [parseLabelSelector('app.kind=x=y')] }, ['a']],
      ['a value that matches no row', { labels: [parseLabelSelector('team=nobody')] }, []],
      ['an absent key', { labels: [parseLabelSelector('missing')] }, []],
      ['ids and labels together', { end_user: 'u1', labels: [parseLabelSelector('team=search')] }, ['c']],
      // Only a label's value matches: not a label's key holding that text, nor the id columns.
      ['a value is not a key', { labels: [parseLabelSelector('billing')] }, []],
      ['an id is not a label', { labels: [parseLabelSelector('end_user=u1')] }, []],
    ];

    for (const [name, filter, ids] of cases) {
      test(`connections: ${name}`, async () => {
        assert.deepEqual((await t.store.connections.list(filter)).map((r) => r.id).sort(), ids.map((i) => `con_${i}`));
      });
      test(`agents: ${name}`, async () => {
        const agents = createAgentsRepo(t.store.db, t.store.dialect);
        assert.deepEqual((await agents.list(filter, now)).map((r) => r.id).sort(), ids.map((i) => `agt_${i}`));
      });
    }

    test('rows written before tags existed read as no tags (nulls and {})', async () => {
      const row = (await t.store.connections.get('con_d'))!;
      assert.deepEqual(tagsOf(row), { end_user: null, organization: null, labels: {} });
      assert.equal(row.labels, '{}');
    });

    test('a tag change leaves version alone (a refresh in flight still lands) and replaces the labels', async () => {
      const before = (await t.store.connections.get('con_b'))!;
      assert.equal(await t.store.tags.set('connections', 'con_b', { end_user: null, labels: { tier: 'gold' } }), true);
      const after = (await t.store.connections.get('con_b'))!;
      assert.equal(after.version, before.version);
      assert.deepEqual(tagsOf(after), { end_user: null, organization: 'org1', labels: { tier: 'gold' } });
      assert.equal(await t.store.connections.updateIfVersion('con_b', before.version, { last_error: null }), true);
      assert.deepEqual((await t.store.connections.list({ labels: [parseLabelSelector('tier=gold')] })).map((r) => r.id), ['con_b']);
      assert.deepEqual((await t.store.connections.list({ labels: [parseLabelSelector('team')] })).map((r) => r.id).sort(), ['con_a', 'con_c']);
      assert.equal(await t.store.tags.set('connections', 'con_nope', { end_user: 'x' }), false);
    });

    test('the SQL label filter agrees with labelsMatch on any label sets and selectors (values with quotes, backslashes, wildcards, unicode)', async () => {
      const keys = fc.constantFrom('team', 'env', 'a.b', 'x-y', 'k_1', '0');
      const values = fc.constantFrom('', 'prod', 'Prod', "o'brien", '"q"', 'back\\slash', '%', '_', 'é', '日本', '=', 'a=b', 'null', '{}');
      const labelSet = fc.dictionary(keys, values, { maxKeys: 4 }).map((d): Labels => ({ ...d }));
      const selector = fc.record({ key: keys, value: fc.option(values, { nil: undefined }) }).map((s): LabelSelector => (s.value === undefined ? { key: s.key } : { key: s.key, value: s.value }));
      let run = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(labelSet, { minLength: 1, maxLength: 5 }), fc.array(selector, { minLength: 1, maxLength: 3 }), async (sets, selectors) => {
          const scope = `prop-${run++}`;
          const ids = sets.map((_, i) => `con_${scope}_${i}`);
          for (const [i, labels] of sets.entries()) await t.store.connections.insert(connection(ids[i]!, { end_user: scope, labels }));
          const got = (await t.store.connections.list({ end_user: scope, labels: selectors })).map((r) => r.id).sort();
          const expected = ids.filter((_, i) => labelsMatch(sets[i]!, selectors)).sort();
          assert.deepEqual(got, expected, JSON.stringify({ sets, selectors }));
        }),
        { numRuns: kind.name === 'postgres' ? 40 : 80 },
      );
    });

    test('end_user and organization are indexed on connections and agents', async () => {
      const names =
        kind.name === 'postgres'
          ? (await sql<{ name: string }>`select indexname as name from pg_indexes where schemaname = current_schema()`.execute(t.store.db)).rows.map((r) => r.name)
          : (await sql<{ name: string }>`select name from sqlite_master where type = 'index'`.execute(t.store.db)).rows.map((r) => r.name);
      for (const n of ['connections_end_user', 'connections_organization', 'agents_end_user', 'agents_organization']) assert.ok(names.includes(n), n);
      if (kind.name === 'postgres') for (const n of ['connections_labels', 'agents_labels']) assert.ok(names.includes(n), n);
    });

    test('on PostgreSQL the label filters (key=value and key) can use the GIN index on labels', { skip: kind.name !== 'postgres' }, async () => {
      for (const selector of ['team=ops', 'team']) {
        const plan = await t.store.transaction(async (trx) => {
          // A four-row table is scanned whatever the indexes: forbid the scan to see whether the index serves.
          await sql`set local enable_seqscan = off`.execute(trx);
          let q = trx.selectFrom('connections').select('id');
          for (const p of tagPredicates('connections', { labels: [parseLabelSelector(selector)] }, 'postgres')) q = q.where(p);
          const compiled = q.compile();
          const rows = await trx.executeQuery<Record<string, string>>({ ...compiled, sql: `explain ${compiled.sql}` });
          return rows.rows.map((r) => Object.values(r).join('')).join('\n');
        });
        assert.match(plan, /connections_labels/, `${selector}:\n${plan}`);
      }
    });
  });
}
