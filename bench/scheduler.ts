// The scheduler's per-tick database cost: one `claimDue` (select the due ids, push their due
// time a lease ahead), on SQLite and, when a URL is given, PostgreSQL, for three tables:
//   (a)   1,000 connections, 1% due     (10 due)
//   (b) 100,000 connections, 1% due  (1,000 due)
//   (c) 100,000 connections,          10 due
// (c)/(a) ≈ 1 says the cost does not follow the table's size; (b)/(c) how it follows the number
// of due rows.
//
//   node --import tsx bench/scheduler.ts [--pg postgres://…] [--reps 31]
//
// PostgreSQL comes from --pg or WARRANT_TEST_DATABASE_URL. Each table lives in a throwaway schema
// (as the tests do), inside a throwaway database when the role may create one (see
// parkMigrationTables for why); SQLite in a temp dir. All of it is dropped at the end.
import { performance } from 'node:perf_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CompiledQuery, sql } from 'kysely';
import pg from 'pg';
import { dueIdsQuery } from '../src/store/connections.ts';
import { createStore, type Db, type NewConnectionRow, type Store } from '../src/store/index.ts';
import { parseKeyRing } from '../src/crypto/index.ts';

const { values: args } = parseArgs({
  options: {
    pg: { type: 'string' },
    reps: { type: 'string', default: '31' },
    help: { type: 'boolean', short: 'h' },
  },
});
const usage = 'usage: node --import tsx bench/scheduler.ts [--pg postgres://…] [--reps 31]';
if (args.help) {
  console.log(usage);
  process.exit(0);
}
const pgUrl = args.pg || process.env.WARRANT_TEST_DATABASE_URL || undefined;

const REPS = Number(args.reps);
if (!Number.isInteger(REPS) || REPS < 1) throw new Error(`--reps must be a positive integer\n${usage}`);
/** Untimed rounds first: JIT, connection pools, page cache. */
const WARMUP = 5;
/** Connections claimed per tick: at least the largest due count, so (b) is one tick. */
const BATCH = 1000;
const LEASE_MS = 60_000;
/** Every seeded row has refresh_due_at = expires_at - MARGIN_MS: a reset can restore the due time. */
const MARGIN_MS = 5 * 60_000;
const INSERT_CHUNK = 500;
/** Share of not-due rows without a due time (API-key and basic-auth connections). */
const NULL_DUE_SHARE = 0.02;
/**
 * A full garbage collection before every timed tick. Without it a tick's time depends on the one
 * before: right after a (b) tick (1,000 rows of garbage, megabytes of pages touched) a 10-row claim
 * takes two to three times as long as right after another 10-row claim, and a median over a mix of
 * both flips between the two. After a collection every tick starts from the same, cold-ish state,
 * like a real tick that runs every few seconds between other work.
 */
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/** The "now" of every tick: due rows are before it, the others well after NOW + LEASE_MS. */
const NOW = Date.now();

type Kind = 'sqlite' | 'postgres';

interface Scenario {
  label: string;
  total: number;
  due: number;
}
const scenarios: Scenario[] = [
  { label: '(a)', total: 1_000, due: 10 },
  { label: '(b)', total: 100_000, due: 1_000 },
  { label: '(c)', total: 100_000, due: 10 },
];

interface Prepared {
  scenario: Scenario;
  store: Store;
  plan: string[];
  times: number[];
}

interface Result {
  scenario: Scenario;
  median: number;
  min: number;
  max: number;
  usesIndex: boolean;
}

interface BenchStore {
  store: Store;
  cleanup(): Promise<void>;
}

/** Everything still to drop or delete, for the finally blocks and for Ctrl-C. */
const pendingCleanups = new Set<() => Promise<void>>();

async function pgExec(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/**
 * Where the PostgreSQL schemas go: a throwaway database when the role may create one, so that
 * other Warrant schemas in the given database (a test run next door) cannot break the stores'
 * migrations; else the given database itself.
 */
async function pgBenchDatabase(url: string): Promise<{ url: string; note: string; drop(): Promise<void> }> {
  const name = `warrant_bench_${randomBytes(6).toString('hex')}`;
  try {
    await pgExec(url, `create database "${name}"`);
  } catch (err) {
    const reason = (err as Error).message;
    return { url, note: `schemas in the given database (create database refused: ${reason})`, drop: async () => {} };
  }
  const drop = () => pgExec(url, `drop database if exists "${name}"`);
  pendingCleanups.add(drop);
  const own = new URL(url);
  own.pathname = `/${name}`;
  return {
    url: own.toString(),
    note: `schemas in throwaway database ${name}`,
    drop: async () => {
      pendingCleanups.delete(drop);
      await drop();
    },
  };
}

/** A fresh, migrated store: a temp SQLite dir or a throwaway PostgreSQL schema (as the test helpers make). */
async function openBenchStore(kind: Kind, databaseUrl?: string): Promise<BenchStore> {
  const keys = parseKeyRing(`k1:${randomBytes(32).toString('base64')}`);
  const ring = { current: () => keys };
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'warrant-bench-'));
    const removeDir = async () => rmSync(dir, { recursive: true, force: true });
    pendingCleanups.add(removeDir);
    const store = await createStore({ dataDir: dir, ring });
    pendingCleanups.delete(removeDir);
    const cleanup = async () => {
      pendingCleanups.delete(cleanup);
      await store.close();
      await removeDir();
    };
    pendingCleanups.add(cleanup);
    return { store, cleanup };
  }
  const schema = `bench_${randomBytes(6).toString('hex')}`;
  const drop = () => pgExec(databaseUrl!, `drop schema if exists "${schema}" cascade`);
  // createStore creates the schema before it migrates: drop it even when the migration fails.
  pendingCleanups.add(drop);
  let store: Store;
  try {
    store = await createStore({ databaseUrl: databaseUrl!, pgSchema: schema, ring, poolSize: 2 });
  } catch (err) {
    pendingCleanups.delete(drop);
    await drop().catch(() => {});
    if (/warrant_migrations/.test((err as Error).message)) {
      throw new Error('PostgreSQL store failed to migrate: is another Warrant schema in this database? (see parkMigrationTables)', { cause: err });
    }
    throw err;
  }
  pendingCleanups.delete(drop);
  const cleanup = async () => {
    pendingCleanups.delete(cleanup);
    await store.close();
    await drop();
  };
  pendingCleanups.add(cleanup);
  return { store, cleanup };
}

/**
 * Kysely's migrator decides whether its bookkeeping tables exist by looking in every schema of
 * the database, not the one on the search_path (src/store/db.ts passes no migrationTableSchema).
 * With one Warrant schema already in the database, the next store's migration skips creating them
 * and fails ("relation warrant_migrations_lock does not exist"). The bench keeps three stores open
 * at once, so it parks the open ones' bookkeeping tables under other names while it opens the next.
 */
async function parkMigrationTables(db: Db, park: boolean): Promise<void> {
  for (const t of ['warrant_migrations', 'warrant_migrations_lock']) {
    const [from, to] = park ? [t, `${t}_parked`] : [`${t}_parked`, t];
    await sql`alter table ${sql.id(from)} rename to ${sql.id(to)}`.execute(db);
  }
}

/** Small deterministic PRNG, so every run seeds the same shape of data. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PROVIDERS = ['google', 'github', 'slack', 'microsoft', 'salesforce', 'hubspot', 'notion', 'atlassian', 'zoom', 'dropbox'];

function* seedRows(s: Scenario): Generator<NewConnectionRow> {
  const rand = mulberry32(s.total * 31 + s.due);
  // Due rows spread over the table, not bunched at its start.
  const duePositions = new Set<number>();
  while (duePositions.size < s.due) duePositions.add(Math.floor(rand() * s.total));
  for (let i = 0; i < s.total; i++) {
    let refreshDueAt: number | null;
    if (duePositions.has(i)) {
      // Became due within the last few minutes.
      refreshDueAt = NOW - 1_000 - Math.floor(rand() * 5 * 60_000);
    } else if (rand() < NULL_DUE_SHARE) {
      refreshDueAt = null;
    } else {
      // Mostly hour-long tokens due within the hour; some long-lived ones due within a month.
      // Always past NOW + LEASE_MS, so they never look like a claimed row to resetClaimed.
      const span = rand() < 0.8 ? 60 * 60_000 : 30 * 24 * 60 * 60_000;
      refreshDueAt = NOW + 2 * LEASE_MS + Math.floor(rand() * span);
    }
    const refreshed = NOW - Math.floor(rand() * 60 * 60_000);
    yield {
      id: `con_${randomBytes(12).toString('base64url')}`,
      provider: PROVIDERS[i % PROVIDERS.length]!,
      environment: 'production',
      owner: `user${i % 5_000}@example.com`,
      status: 'active',
      scopes: '["read","write"]',
      requested_scopes: '["read","write"]',
      params: '{}',
      expires_at: refreshDueAt === null ? null : refreshDueAt + MARGIN_MS,
      refresh_due_at: refreshDueAt,
      last_refreshed_at: refreshed,
      last_error: null,
      failure_count: 0,
      next_attempt_at: null,
      version: 0,
      refresh_fence: 0,
      created_at: refreshed - 86_400_000,
      updated_at: refreshed,
    };
  }
}

/** Multi-row inserts of INSERT_CHUNK rows, all in one transaction. */
async function seed(store: Store, s: Scenario): Promise<void> {
  await store.transaction(async (trx) => {
    let chunk: NewConnectionRow[] = [];
    for (const row of seedRows(s)) {
      chunk.push(row);
      if (chunk.length === INSERT_CHUNK) {
        await trx.insertInto('connections').values(chunk).execute();
        chunk = [];
      }
    }
    if (chunk.length) await trx.insertInto('connections').values(chunk).execute();
  });
  // PostgreSQL: the statistics autovacuum would have gathered on a live table (the bench outruns
  // its nap time, and it may be off). SQLite: nothing; Warrant never runs ANALYZE there.
  if (store.dialect === 'postgres') await sql`analyze connections`.execute(store.db);
}

/** Claimed rows carry refresh_due_at = NOW + LEASE_MS: put them back to their original due time. */
async function resetClaimed(db: Db): Promise<number> {
  const r = await db
    .updateTable('connections')
    .set((eb) => ({ refresh_due_at: eb('expires_at', '-', MARGIN_MS) }))
    .where('refresh_due_at', '=', NOW + LEASE_MS)
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

/** The plan of claimDue's select (the query claimDue itself uses). */
async function explainClaim(store: Store): Promise<string[]> {
  const q = dueIdsQuery(store.db, NOW, BATCH, store.dialect).compile();
  const prefix = store.dialect === 'postgres' ? 'EXPLAIN ' : 'EXPLAIN QUERY PLAN ';
  const res = await store.db.executeQuery<Record<string, unknown>>(CompiledQuery.raw(prefix + q.sql, [...q.parameters]));
  return res.rows.map((r) => String(store.dialect === 'postgres' ? r['QUERY PLAN'] : r['detail']).trim());
}

/** One claim on `p`, timed (after a garbage collection); then its claimed rows are put back to due, untimed. */
async function tick(kind: Kind, p: Prepared, record: boolean): Promise<void> {
  const { store, scenario: s } = p;
  collectGarbage();
  const t0 = performance.now();
  const claimed = await store.connections.claimDue(NOW, BATCH, LEASE_MS, store.dialect);
  const ms = performance.now() - t0;
  if (claimed.length !== s.due) throw new Error(`${kind} ${s.label}: claimed ${claimed.length}, expected ${s.due}`);
  const reset = await resetClaimed(store.db);
  if (reset !== s.due) throw new Error(`${kind} ${s.label}: reset ${reset} rows, expected ${s.due}`);
  if (record) p.times.push(ms);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Seeds one store per scenario, then times them in interleaved rounds (one tick of each per
 * round), so load from elsewhere on the machine falls on all three alike and the ratios between
 * them hold even when the absolute numbers wobble.
 */
async function runKind(kind: Kind): Promise<Result[]> {
  const opened: BenchStore[] = [];
  const database = kind === 'postgres' ? await pgBenchDatabase(pgUrl!) : undefined;
  if (database) console.log(`postgres ${database.note}`);
  try {
    const prepared: Prepared[] = [];
    for (const s of scenarios) {
      if (kind === 'postgres') for (const o of opened) await parkMigrationTables(o.store.db, true);
      const t = await openBenchStore(kind, database?.url);
      opened.push(t);
      if (kind === 'postgres') for (const o of opened.slice(0, -1)) await parkMigrationTables(o.store.db, false);
      const seedStart = performance.now();
      await seed(t.store, s);
      const seedMs = performance.now() - seedStart;
      const plan = await explainClaim(t.store);
      prepared.push({ scenario: s, store: t.store, plan, times: [] });
      console.log(`${kind.padEnd(8)} ${s.label} seeded ${fmtInt(s.total)} rows (${fmtInt(s.due)} due) in ${(seedMs / 1000).toFixed(1)} s`);
      console.log(`${' '.repeat(13)}plan: ${plan.join(' | ')}`);
    }
    for (let round = 0; round < WARMUP + REPS; round++) {
      // (a) (b) (c), then (c) (b) (a): (a) and (c) each follow (b), whose garbage and dirty pages
      // the next tick may pay for, equally often.
      const order = round % 2 ? [...prepared].reverse() : prepared;
      for (const p of order) await tick(kind, p, round >= WARMUP);
    }
    return prepared.map((p) => {
      const r: Result = {
        scenario: p.scenario,
        median: median(p.times),
        min: Math.min(...p.times),
        max: Math.max(...p.times),
        usesIndex: p.plan.some((line) => line.includes('connections_refresh_due')),
      };
      console.log(`${kind.padEnd(8)} ${p.scenario.label} tick min ${fmt(r.min)} / median ${fmt(r.median)} / max ${fmt(r.max)} ms`);
      return r;
    });
  } finally {
    for (const t of opened) await t.cleanup();
    await database?.drop();
  }
}

const fmtInt = (n: number) => n.toLocaleString('en-US');
const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
const fmtPerRow = (ms: number) => (ms >= 0.1 ? ms.toFixed(3) : ms.toFixed(4));

async function main(): Promise<void> {
  const kinds: Kind[] = pgUrl ? ['sqlite', 'postgres'] : ['sqlite'];
  const onSignal = async () => {
    for (const c of [...pendingCleanups]) await c().catch(() => {});
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  console.log(
    `Scheduler claim (claimDue: select due ids + push their due time), batch ${BATCH}, lease ${LEASE_MS / 1000} s; ` +
      `median of ${REPS} ticks after ${WARMUP} warm-up, the three tables interleaved, a GC before each tick; Node ${process.version}, ${cpus().length} CPUs`,
  );
  const skipped = 'PostgreSQL skipped: pass --pg <url> or set WARRANT_TEST_DATABASE_URL';
  if (!pgUrl) console.log(skipped);
  console.log('');

  const results = new Map<Kind, Result[]>();
  for (const kind of kinds) results.set(kind, await runKind(kind));

  console.log('');
  console.log('| store | row | total | due | median tick ms | ms per due row |');
  console.log('|---|---|---:|---:|---:|---:|');
  for (const [kind, rs] of results) {
    for (const r of rs) {
      console.log(
        `| ${kind} | ${r.scenario.label} | ${fmtInt(r.scenario.total)} | ${fmtInt(r.scenario.due)} | ${fmt(r.median)} | ${fmtPerRow(r.median / r.scenario.due)} |`,
      );
    }
  }
  console.log('');
  // A straight line through (c) and (b) (same table, 10 and 1,000 due): what a tick costs before
  // any due row (round trips, transaction, commit) and what each further due row adds.
  console.log(
    '| store | (c)/(a): 100× rows, same due | (b)/(c): 100× due, same rows | per extra due row, ((b)−(c))/990 | fixed per tick, (c) − 10 × that | select uses connections_refresh_due |',
  );
  console.log('|---|---:|---:|---:|---:|---|');
  for (const [kind, rs] of results) {
    const [a, b, c] = rs as [Result, Result, Result];
    const perRow = (b.median - c.median) / (b.scenario.due - c.scenario.due);
    const fixed = c.median - c.scenario.due * perRow;
    const idx = rs.every((r) => r.usesIndex) ? 'yes (a, b, c)' : rs.map((r) => `${r.scenario.label} ${r.usesIndex ? 'yes' : 'NO'}`).join(', ');
    console.log(`| ${kind} | ${(c.median / a.median).toFixed(2)} | ${(b.median / c.median).toFixed(1)} | ${fmtPerRow(perRow)} ms | ${fmt(fixed)} ms | ${idx} |`);
  }
  if (!pgUrl) console.log(`\n${skipped}`);
}

try {
  await main();
} finally {
  for (const c of [...pendingCleanups]) await c().catch(() => {});
}
