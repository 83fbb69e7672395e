import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant, type Warrant } from '../../src/warrant.ts';
import { parseKeyRing } from '../../src/crypto/index.ts';
import { createStore, type Db } from '../../src/store/index.ts';
import { CHAIN_KEY_SECRET, createAuditLog } from '../../src/events/index.ts';
import { GENESIS, hashOf } from '../../src/events/chain.ts';
import { captureLogger } from '../helpers/app.ts';
import { createSchema, dropSchema, storeKinds, testDatabaseUrl } from '../helpers/stores.ts';
import { withSchema } from '../helpers/lifecycle.ts';

// Reproduces security review finding 12: the audit chain was plain SHA-256 over (previous hash,
// entry), so anyone who could write to the database could rewrite an entry, recompute the hashes
// after it, and `GET /v1/audit/verify` answered ok. Now the chain is an HMAC under a key sealed in
// the vault, and its head can be anchored outside Warrant.

const ADMIN = 'audit-keyed-admin-token-0123456789abcdef';
const auth = { authorization: `Bearer ${ADMIN}` };

/** One Warrant data location (a temp dir, or a PostgreSQL schema), restartable. */
async function location(kind: 'sqlite' | 'postgres') {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-audit-keyed-'));
  const schema = `t_${randomBytes(6).toString('hex')}`;
  if (kind === 'postgres') await createSchema(schema);
  const masterKey = `k1:${randomBytes(32).toString('base64')}`;
  const env: Record<string, string> = {
    WARRANT_DATA_DIR: dir,
    WARRANT_ADMIN_TOKEN: ADMIN,
    WARRANT_PORT: '0',
    WARRANT_MASTER_KEY: masterKey,
    ...(kind === 'postgres' ? { DATABASE_URL: withSchema(testDatabaseUrl!, schema) } : {}),
  };
  return {
    async start() {
      const logs = captureLogger();
      const warrant = await createWarrant(loadConfig(env), { logger: logs.logger, notice: () => {}, scheduler: false, webhooks: false });
      const get = async (url: string, headers: Record<string, string> = auth) => warrant.app.inject({ url, headers });
      return { warrant, logs, get, json: async (url: string) => (await get(url)).json() };
    },
    /** The store as a Warrant from before keying used it: an unkeyed chain. */
    async openOld() {
      const ring = { current: () => parseKeyRing(masterKey) };
      const store = await createStore(kind === 'postgres' ? { databaseUrl: testDatabaseUrl!, pgSchema: schema, ring, poolSize: 2 } : { dataDir: dir, ring });
      return { store, audit: createAuditLog({ db: store.db, dialect: store.dialect, sqliteFile: store.sqliteFile, now: Date.now }) };
    },
    async cleanup() {
      if (kind === 'postgres') await dropSchema(schema);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

type Row = { seq: number; id: string; at: number; type: string; actor: string; subject: string | null; data: string; prev_hash: string; hash: string };
const rowsOf = async (db: Db): Promise<Row[]> => (await db.selectFrom('audit_events').selectAll().orderBy('seq').execute()).map((r) => ({ ...r, seq: Number(r.seq) }));

/** What an attacker with database access does: edit an entry, recompute the SHA-256 chain from it (or `start`) on. */
async function forgeFrom(db: Db, seq: number, data?: string, start = seq): Promise<void> {
  const rows = await rowsOf(db);
  let prev = rows.filter((r) => r.seq < start).at(-1)?.hash ?? GENESIS;
  for (const row of rows.filter((r) => r.seq >= start)) {
    const next = { ...row, data: row.seq === seq && data ? data : row.data, prev_hash: prev };
    next.hash = hashOf(prev, next);
    await db.updateTable('audit_events').set({ data: next.data, prev_hash: next.prev_hash, hash: next.hash }).where('seq', '=', row.seq).execute();
    prev = next.hash;
  }
}

async function restore(db: Db, rows: Row[]): Promise<void> {
  for (const r of rows) await db.updateTable('audit_events').set({ data: r.data, prev_hash: r.prev_hash, hash: r.hash }).where('seq', '=', r.seq).execute();
}

const entries = (n: number, tag: string) => Array.from({ length: n }, (_, j) => ({ type: 'proxy.call', actor: `agent:${tag}`, data: { j } }));

/** The check docs/audit.md describes: the anchored entry is still there, unchanged, keyed, and the chain verifies. */
async function matchesAnchor(json: (url: string) => Promise<any>, anchor: { seq: number; hash: string }): Promise<boolean> {
  const { entries: [entry] } = await json(`/v1/audit?after=${anchor.seq - 1}&limit=1`);
  const verify = await json('/v1/audit/verify');
  return entry?.seq === anchor.seq && entry.hash === anchor.hash && verify.ok && verify.keyed_from !== undefined && verify.keyed_from <= anchor.seq;
}

for (const kind of storeKinds) {
  describe(`keyed audit chain (${kind.name})`, { skip: kind.skip }, () => {
    const cleanups: (() => Promise<void>)[] = [];
    after(async () => {
      for (const c of cleanups.reverse()) await c();
    });

    test('regression: rewriting an entry and recomputing the SHA-256 chain after it is reported at that entry', async () => {
      const loc = await location(kind.name);
      cleanups.push(loc.cleanup);
      let w = await loc.start();
      let closed = false;
      try {
        // Through the embedded writer thread (SQLite) and inside other transactions (the main connection).
        await w.warrant.audit.append(entries(20, 'a'));
        for (let i = 0; i < 10; i++) await w.warrant.store.transaction((trx) => w.warrant.audit.append({ type: 'in-trx', actor: 'system', data: { i } }, trx));
        await w.warrant.audit.append(entries(10, 'b'));
        const rows = await rowsOf(w.warrant.store.db);
        assert.deepEqual(await w.json('/v1/audit/verify'), { ok: true, entries: rows.length, keyed_from: 1 });
        assert.ok(rows.every((r, i) => r.hash !== hashOf(i ? rows[i - 1]!.hash : GENESIS, r)), 'no entry is plain SHA-256');

        const victim = rows[17]!;
        await forgeFrom(w.warrant.store.db, victim.seq, '{"j":999}');
        assert.deepEqual(await w.json('/v1/audit/verify'), { ok: false, entries: 18, first_bad: victim.seq, first_bad_id: victim.id, reason: 'hash_mismatch', keyed_from: 1 });

        // The key outlives a restart (never replaced), and it is in no log line.
        await w.warrant.close();
        closed = true;
        w = await loc.start();
        closed = false;
        assert.deepEqual(await w.json('/v1/audit/verify'), { ok: false, entries: 18, first_bad: victim.seq, first_bad_id: victim.id, reason: 'hash_mismatch', keyed_from: 1 });
        assert.doesNotMatch(w.logs.text(), /audit chain key created/);
        const sealed = JSON.parse((await w.warrant.store.vault.get(CHAIN_KEY_SECRET))!) as { key: string };
        for (const text of [w.logs.text(), JSON.stringify(await rowsOf(w.warrant.store.db))]) {
          assert.ok(!text.includes(sealed.key) && !text.includes(Buffer.from(sealed.key, 'base64').toString('hex')), 'no key material');
        }
      } finally {
        if (!closed) await w.warrant.close();
      }
    });

    test('an old store: its unkeyed entries keep verifying, new ones are keyed from a boundary the database cannot move', async () => {
      const loc = await location(kind.name);
      cleanups.push(loc.cleanup);
      const old = await loc.openOld();
      await old.audit.append(entries(30, 'old'));
      await old.audit.close();
      // Control: on the unkeyed chain every Warrant wrote before, the same forgery verified ok.
      const pristine = await rowsOf(old.store.db);
      await forgeFrom(old.store.db, pristine[9]!.seq, '{"j":999}');
      assert.deepEqual(await old.audit.verify(), { ok: true, entries: 30 });
      await restore(old.store.db, pristine);
      await old.store.close();

      const w = await loc.start();
      try {
        assert.match(w.logs.text(), /"keyed_from":31,.*audit chain key created/);
        assert.deepEqual(await w.json('/v1/audit/verify'), { ok: true, entries: 30, keyed_from: 31 });
        await w.warrant.audit.append(entries(10, 'new'));
        const db = w.warrant.store.db;
        const rows = await rowsOf(db);
        assert.deepEqual(await w.json('/v1/audit/verify'), { ok: true, entries: 40, keyed_from: 31 });
        const plain = rows.map((r, i) => r.hash === hashOf(i ? rows[i - 1]!.hash : GENESIS, r));
        assert.deepEqual(plain, rows.map((r) => r.seq < 31), 'SHA-256 before the boundary, HMAC from it on');

        // Declaring the keyed entries unkeyed (recomputing them as SHA-256) does not move the boundary.
        await forgeFrom(db, 31);
        assert.deepEqual(await w.json('/v1/audit/verify'), { ok: false, entries: 31, first_bad: 31, first_bad_id: rows[30]!.id, reason: 'hash_mismatch', keyed_from: 31 });
        await restore(db, rows);
        // Rewriting the unkeyed part: it no longer ends at the head sealed with the key.
        await forgeFrom(db, 10, '{"j":999}');
        const forged = await w.json('/v1/audit/verify');
        assert.deepEqual(forged, { ok: false, entries: 31, first_bad: 30, first_bad_id: rows[29]!.id, reason: 'unkeyed_rewritten', keyed_from: 31 });
        await restore(db, rows);
        assert.equal((await w.json('/v1/audit/verify')).ok, true);
        // The boundary is nowhere but in the sealed secret; a changed or swapped sealed row does not open.
        const settings = await db.selectFrom('settings').select('name').execute();
        assert.ok(!settings.some((s) => /audit|chain/.test(s.name)), 'no part of the boundary in settings');
        const sealed = (await w.warrant.store.secrets.get(CHAIN_KEY_SECRET))!;
        await w.warrant.store.vault.put({ scope: 'audit', ref: 'chain', field: 'decoy' }, JSON.stringify({ v: 1, key: randomBytes(32).toString('base64'), from_seq: 1000, after_hash: GENESIS }));
        const decoy = (await w.warrant.store.secrets.get({ scope: 'audit', ref: 'chain', field: 'decoy' }))!;
        for (const swap of [{ ciphertext: decoy.ciphertext, wrapped_key: decoy.wrapped_key }, { ciphertext: `${sealed.ciphertext.slice(0, -4)}AAAA` }]) {
          await db.updateTable('secrets').set(swap).where('scope', '=', 'audit').where('field', '=', 'key').execute();
          await assert.rejects(loc.start(), 'a Warrant does not start on a chain key it cannot open');
        }
        await db.updateTable('secrets').set({ ciphertext: sealed.ciphertext, wrapped_key: sealed.wrapped_key }).where('scope', '=', 'audit').where('field', '=', 'key').execute();
      } finally {
        await w.warrant.close();
      }
    });

    test('GET /v1/audit/head: the head to anchor (admin only, documented); an anchored head exposes truncation and a replaced key', async () => {
      const loc = await location(kind.name);
      cleanups.push(loc.cleanup);
      let w = await loc.start();
      try {
        assert.deepEqual(await w.json('/v1/audit/head'), { seq: 0, hash: GENESIS, at: null, keyed: false, keyed_from: 1 });
        assert.equal((await w.get('/v1/audit/head', {})).statusCode, 401);
        assert.ok((await w.json('/openapi.json')).paths['/v1/audit/head'].get);
        const appended = await w.warrant.audit.append(entries(12, 'h'));
        const last = appended.at(-1)!;
        const anchor = await w.json('/v1/audit/head');
        assert.deepEqual(anchor, { seq: last.seq, hash: last.hash, at: new Date(last.at).toISOString(), keyed: true, keyed_from: 1 });
        await w.warrant.audit.append(entries(5, 'later'));
        assert.ok(await matchesAnchor(w.json, anchor), 'a later export extends the anchored head');

        // Truncation: no entry is left to disagree, but the sealed head names the newest entry, now
        // gone (audit_seal, migration 015); and the anchored entry is gone too.
        const db = w.warrant.store.db;
        const rows = await rowsOf(db);
        await db.deleteFrom('audit_events').where('seq', '>=', anchor.seq - 2).execute();
        const newest = rows.at(-1)!;
        assert.deepEqual(await w.json('/v1/audit/verify'), { ok: false, entries: anchor.seq - 3, first_bad: newest.seq, first_bad_id: newest.id, reason: 'truncated', keyed_from: 1 });
        assert.equal(await matchesAnchor(w.json, anchor), false);
        await db.insertInto('audit_events').values(rows.filter((r) => r.seq >= anchor.seq - 2)).execute();
        assert.ok(await matchesAnchor(w.json, anchor));

        // The key deleted and the whole chain rewritten as SHA-256: the next start makes a new key past
        // the forgery, so the chain verifies; the anchor does not (warned at start, keyed_from moved).
        await db.deleteFrom('secrets').where('scope', '=', 'audit').execute();
        await forgeFrom(db, rows[3]!.seq, '{"j":999}', rows[0]!.seq);
        await w.warrant.close();
        w = await loc.start();
        assert.match(w.logs.text(), /audit chain key created/);
        assert.equal((await w.json('/v1/audit/verify')).ok, true);
        assert.equal(await matchesAnchor(w.json, anchor), false);
        assert.equal((await w.json('/v1/audit/head')).keyed, false, 'the head an attacker wrote is not keyed');
      } finally {
        await w.warrant.close();
      }
    });
  });
}
