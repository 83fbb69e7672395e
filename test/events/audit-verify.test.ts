import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import fc from 'fast-check';
import { auditCommand } from '../../src/cli/audit.ts';
import type { Db } from '../../src/store/index.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { runWarrant } from '../helpers/process.ts';
import { storeKinds } from '../helpers/stores.ts';

// Issue 11, "What it must show": editing, deleting or reordering any single row of a 10,000-event
// log is detected by `warrant audit verify`, with the first bad position. Before the sealed head
// (audit_seal), deleting the newest entry went unnoticed: no entry was left to disagree.

const N = 10_000;

type Row = { seq: number; id: string; at: number; type: string; actor: string; subject: string | null; data: string; prev_hash: string; hash: string };
const rowsOf = async (db: Db): Promise<Row[]> => (await db.selectFrom('audit_events').selectAll().orderBy('seq').execute()).map((r) => ({ ...r, seq: Number(r.seq), at: Number(r.at) }));

const TAMPERS = ['edit_data', 'edit_hash', 'edit_prev', 'delete', 'swap'] as const;
type Tamper = (typeof TAMPERS)[number];

interface Expected {
  seq: number;
  id: string;
  reason: string;
}

/** Changes one row (or, for `swap`, exchanges two) as someone with database access would; answers what verify must report and how to undo it. */
async function tamper(db: Db, rows: Row[], kind: Tamper, p: number, q: number): Promise<{ expected: Expected; undo(): Promise<void> }> {
  const row = rows[p]!;
  const put = (r: Row, values: Partial<Row>) => db.updateTable('audit_events').set(values).where('seq', '=', r.seq).execute();
  const { seq: _s, ...content } = row;
  switch (kind) {
    case 'edit_data':
      await put(row, { data: JSON.stringify({ ...JSON.parse(row.data), tampered: true }) });
      return { expected: { seq: row.seq, id: row.id, reason: 'hash_mismatch' }, undo: async () => void (await put(row, content)) };
    case 'edit_hash':
      await put(row, { hash: `${row.hash.slice(0, -1)}${row.hash.endsWith('0') ? '1' : '0'}` });
      return { expected: { seq: row.seq, id: row.id, reason: 'hash_mismatch' }, undo: async () => void (await put(row, content)) };
    case 'edit_prev':
      await put(row, { prev_hash: rows[(p + 7) % rows.length]!.hash });
      return { expected: { seq: row.seq, id: row.id, reason: 'chain_break' }, undo: async () => void (await put(row, content)) };
    case 'delete': {
      await db.deleteFrom('audit_events').where('seq', '=', row.seq).execute();
      const undo = async () => void (await db.insertInto('audit_events').values(row).execute());
      // The newest entry leaves nothing to disagree: the sealed head still names it.
      if (p === rows.length - 1) return { expected: { seq: row.seq, id: row.id, reason: 'truncated' }, undo };
      return { expected: { seq: rows[p + 1]!.seq, id: rows[p + 1]!.id, reason: 'chain_break' }, undo };
    }
    case 'swap': {
      const [a, b] = p < q ? [rows[p]!, rows[q]!] : [rows[q]!, rows[p]!];
      // Puts each content at a seq; ids are unique, so they step aside first.
      const place = (moves: [number, Row][]) =>
        db.transaction().execute(async (trx) => {
          for (const [seq] of moves) await trx.updateTable('audit_events').set({ id: `tmp_${seq}` }).where('seq', '=', seq).execute();
          for (const [seq, { seq: _x, ...c }] of moves) await trx.updateTable('audit_events').set(c).where('seq', '=', seq).execute();
        });
      await place([[a.seq, b], [b.seq, a]]);
      return { expected: { seq: a.seq, id: b.id, reason: 'chain_break' }, undo: () => place([[a.seq, a], [b.seq, b]]) };
    }
  }
}

for (const kind of storeKinds) {
  describe(`warrant audit verify on a ${N}-entry log (${kind.name})`, { skip: kind.skip }, () => {
    let env: LifecycleEnv;
    let base: string;
    let db: Db;
    let rows: Row[];

    /** `warrant audit …` in this process; answers its exit code and what it printed. */
    async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
      let out = '';
      let err = '';
      const program = new Command('warrant').exitOverride();
      program.addCommand(auditCommand({ stdout: (t) => void (out += t), stderr: (t) => void (err += t) }));
      process.exitCode = undefined;
      await program.parseAsync(['node', 'warrant', 'audit', ...args]);
      const code = Number(process.exitCode ?? 0);
      process.exitCode = undefined;
      return { code, out, err };
    }

    /** Through the running Warrant, or reading the store directly (--store) with the key ring. */
    async function verify(mode: 'api' | 'store') {
      if (mode === 'api') return cli('verify', '--url', base, '--token', ADMIN_TOKEN);
      const saved = { ...process.env };
      Object.assign(process.env, { WARRANT_DATA_DIR: env.env.WARRANT_DATA_DIR, WARRANT_MASTER_KEY: env.env.WARRANT_MASTER_KEY });
      if (env.env.DATABASE_URL) process.env.DATABASE_URL = env.env.DATABASE_URL;
      else delete process.env.DATABASE_URL;
      try {
        return await cli('verify', '--store');
      } finally {
        for (const k of ['WARRANT_DATA_DIR', 'WARRANT_MASTER_KEY', 'DATABASE_URL']) {
          if (saved[k] === undefined) delete process.env[k];
          else process.env[k] = saved[k];
        }
      }
    }

    before(async () => {
      env = await startLifecycle({ store: kind.name });
      base = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
      db = env.warrant.store.db;
      // Written through the chain code (the writer thread on SQLite), 500 entries a transaction.
      const types = ['proxy.call', 'agent.created', 'mcp.tool_call', 'connection.refreshed'];
      for (let i = 0; i < N; i += 500) {
        await env.warrant.audit.append(
          Array.from({ length: 500 }, (_, j) => ({ type: types[(i + j) % types.length]!, actor: `agent:agt_${(i + j) % 17}`, subject: `connection:con_${(i + j) % 5}`, data: { n: i + j } })),
        );
      }
      rows = await rowsOf(db);
      assert.equal(rows.length, N);
    });
    after(async () => {
      await env?.cleanup();
    });

    test('an untouched log verifies, through the server and from the store (exit 0)', async () => {
      for (const mode of ['api', 'store'] as const) {
        const r = await verify(mode);
        assert.equal(r.code, 0, `${mode}: ${r.out}${r.err}`);
        assert.match(r.out, new RegExp(`^audit log verifies: ${N} entries \\(keyed from seq 1\\)`));
      }
    });

    test('first, middle and last rows edited, deleted or reordered: exit 1 naming the first bad seq, event id and why (both modes)', async () => {
      for (const p of [0, N / 2, N - 1]) {
        for (const t of TAMPERS) {
          const q = p === N - 1 ? p - 1 : p + 1;
          const { expected, undo } = await tamper(db, rows, t, p, q);
          try {
            for (const mode of ['api', 'store'] as const) {
              const r = await verify(mode);
              assert.equal(r.code, 1, `${t} at ${p} (${mode}) must fail: ${r.out}`);
              assert.match(r.out, new RegExp(`first bad position seq ${expected.seq} \\(${expected.id}\\): ${expected.reason}: `), `${t} at ${p} (${mode})`);
            }
          } finally {
            await undo();
          }
        }
      }
      assert.equal((await verify('store')).code, 0, 'every change undone: the log verifies again');
    });

    test('property: any single row, any tamper kind, is reported at the first bad position', async () => {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: N - 1 }), fc.constantFrom(...TAMPERS), fc.integer({ min: 0, max: N - 1 }), async (p, t, other) => {
          const q = other === p ? (p + 1) % N : other;
          const { expected, undo } = await tamper(db, rows, t, p, q);
          try {
            const r = await verify(run++ % 2 ? 'store' : 'api');
            assert.equal(r.code, 1, `${t} at ${p}/${q}: ${r.out}`);
            assert.match(r.out, new RegExp(`first bad position seq ${expected.seq} \\(${expected.id}\\): ${expected.reason}: `));
          } finally {
            await undo();
          }
        }),
        { numRuns: 30 },
      );
      assert.equal((await verify('api')).code, 0);
    });

    test('the installed command: `warrant audit verify --store` exits 1 with the position; the sealed head deleted is reported too', { skip: kind.name === 'postgres' ? 'one process spawn is enough (SQLite)' : false }, async () => {
      const last = rows.at(-1)!;
      const { undo } = await tamper(db, rows, 'delete', N - 1, 0);
      try {
        const child = runWarrant(['audit', 'verify', '--store'], { WARRANT_DATA_DIR: env.env.WARRANT_DATA_DIR!, WARRANT_MASTER_KEY: env.env.WARRANT_MASTER_KEY! });
        assert.equal(await child.exit(), 1, child.stderr());
        assert.match(child.stdout(), new RegExp(`first bad position seq ${last.seq} \\(${last.id}\\): truncated: the sealed head names this entry`));
      } finally {
        await undo();
      }
      const seal = await db.selectFrom('audit_seal').selectAll().execute();
      await db.deleteFrom('audit_seal').execute();
      try {
        const r = await verify('api');
        assert.equal(r.code, 1);
        assert.match(r.out, new RegExp(`first bad position seq ${last.seq} \\(${last.id}\\): seal_missing`));
        await db.insertInto('audit_seal').values({ ...seal[0]!, mac: '0'.repeat(64) }).execute();
        assert.match((await verify('store')).out, /: seal_invalid: /);
      } finally {
        await db.deleteFrom('audit_seal').execute();
        await db.insertInto('audit_seal').values(seal).execute();
      }
      assert.equal((await verify('api')).code, 0);
    });
  });
}
