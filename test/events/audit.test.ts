import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createAuditLog, type AuditLog } from '../../src/events/index.ts';
import { openTestStore, storeKinds, type TestStore } from '../helpers/stores.ts';

for (const kind of storeKinds) {
  describe(`audit chain on ${kind.name}`, { skip: kind.skip }, () => {
    let t: TestStore;
    let audit: AuditLog;
    before(async () => {
      t = await openTestStore(kind.name);
      audit = createAuditLog({ db: t.store.db, dialect: t.store.dialect, sqliteFile: t.store.sqliteFile, now: Date.now });
    });
    after(async () => {
      await audit?.close();
      await t?.cleanup();
    });

    test('concurrent appends — batches, single entries and entries inside other transactions — form one valid chain', async () => {
      await Promise.all([
        ...Array.from({ length: 10 }, (_, i) => audit.append(Array.from({ length: 20 }, (_, j) => ({ type: 'proxy.call', actor: `agent:${i}`, data: { j } })))),
        ...Array.from({ length: 10 }, (_, i) => audit.append({ type: 'single', actor: 'system', subject: `s:${i}` })),
        ...Array.from({ length: 5 }, (_, i) =>
          t.store.transaction(async (trx) => {
            await t.store.settings.set(`k${i}`, 'v', Date.now(), trx);
            return audit.append({ type: 'in-trx', actor: 'system', data: { i } }, trx);
          }),
        ),
      ]);
      const result = await audit.verify(37);
      assert.deepEqual(result, { ok: true, entries: 215 });
    });

    test('returned entries carry their seq and data, in order', async () => {
      const entries = await audit.append([
        { type: 'a', actor: 'x', data: { n: 1, nested: { b: 2, a: 1 } } },
        { type: 'b', actor: 'x' },
      ]);
      assert.equal(entries[1]!.seq, entries[0]!.seq + 1);
      assert.equal(entries[1]!.prev_hash, entries[0]!.hash);
      const [stored] = await audit.query({ type: 'a' });
      assert.deepEqual(stored!.data, { n: 1, nested: { a: 1, b: 2 } });
    });

    test('deleting or editing an entry is detected at that entry', async () => {
      const all = await audit.query({ limit: 1000 });
      const victim = all[100]!;
      await t.store.db.updateTable('audit_events').set({ data: '{"j":999}' }).where('seq', '=', victim.seq).execute();
      assert.deepEqual(await audit.verify(), { ok: false, entries: 101, first_bad: victim.seq, first_bad_id: victim.id, reason: 'hash_mismatch' });
      await t.store.db.deleteFrom('audit_events').where('seq', '=', victim.seq).execute();
      const after = await audit.verify();
      assert.equal(after.ok, false);
      assert.equal(after.first_bad, all[101]!.seq);
      assert.equal(after.reason, 'chain_break');
    });
  });
}
