// The scheduler's per-tick database cost: one `claimDue` (select the due ids, push their due
// time a lease ahead), on SQLite and, when a URL is given, PostgreSQL. Three tables:
//   (a)   1,000 connections, 1% due      (10 due)
//   (b) 100,000 connections, 1% due   (1,000 due)
//   (c) 100,000 connections,           10 due
// (c)/(a) ≈ 1 says the cost does not follow the table's size; (b)/(c) says how it follows the
// number of due rows.
//
//   node --import tsx bench/scheduler.ts [--pg postgres://…] [--reps 15]
//
// PostgreSQL comes from --pg or WARRANT_TEST_DATABASE_URL; each table lives in a throwaway
// schema (dropped at the end), SQLite in a temp dir (deleted at the end).
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { CompiledQuery, sql } from 'kysely';
import type { Db, NewConnectionRow, Store } from '../src/store/index.ts';

const { values: args } = parseArgs({
  options: {
    pg: { type: 'string' },
    reps: { type: 'string', default: '15' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  console.log('usage: node --import tsx bench/scheduler.ts [--pg postgres://…] [--reps 15]');
  process.exit(0);
}
const pgUrl = args.pg || process.env.WARRANT_TEST_DATABASE_URL || undefined;
// The test helpers read the URL when imported: set it first.
if (pgUrl) process.env.WARRANT_TEST_DATABASE_URL = pgUrl;
const { openTestStore } = await import('../test/helpers/stores.ts');

const REPS = Number(args.reps);
if (!Number.isInteger(REPS) || REPS < 1) throw new Error('--reps must be a positive integer');
const WARMUP = 1;
/** Connections claimed per tick: at least the largest due count, so (b) is one tick. */
const BATCH = 1000;
const LEASE_MS = 60_000;
/** refresh_due_at = expires_at - MARGIN_MS for every seeded row: lets a reset restore the due time. */
const MARGIN_MS = 5 * 60_000;
const INSERT_CHUNK = 500;
/** Share of not-due rows without a due time (API-key and basic-auth connections). */
const NULL_DUE_SHARE = 0.02;

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

interface Result {
  scenario: Scenario;
  median: number;
  min: number;
  max: number;
  usesIndex: boolean;
}

const NOW = Date.now();

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
      // Became due since the last tick or so.
      refreshDueAt = NOW - 1_000 - Math.floor(rand() * 5 * 60_000);
    } else if (rand() < NULL_DUE_SHARE) {
      refreshDueAt = null;
    } else {
      // Mostly hour-long tokens due within the hour; some long-lived ones due within a month.
      // Always well past NOW + LEASE_MS, so they never collide with a claimed row's due time.
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
  // PostgreSQL: fresh statistics, as autovacuum would have gathered on a live table (the bench
  // is faster than its nap time). SQLite: nothing; Warrant never runs ANALYZE there.
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

/** The plan of claimDue's select, built the same way claimDue builds it. */
async function explainClaim(store: Store): Promise<string[]> {
  let pick = store.db
    .selectFrom('connections')
    .select('id')
    .where('refresh_due_at', '<=', NOW)
    .where('status', 'in', ['active', 'error'])
    .orderBy('refresh_due_at')
    .limit(BATCH);
  if (store.dialect === 'postgres') pick = pick.forUpdate().skipLocked();
  const q = pick.compile();
  const prefix = store.dialect === 'postgres' ? 'EXPLAIN ' : 'EXPLAIN QUERY PLAN ';
  const res = await store.db.executeQuery<Record<string, unknown>>(CompiledQuery.raw(prefix + q.sql, [...q.parameters]));
  return res.rows.map((r) => String(store.dialect === 'postgres' ? r['QUERY PLAN'] : r['detail']));
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function runScenario(kind: 'sqlite' | 'postgres', s: Scenario, cleanups: Set<() => Promise<void>>): Promise<Result> {
  const t = await openTestStore(kind);
  cleanups.add(t.cleanup);
  try {
    const { store } = t;
    const seedStart = performance.now();
    await seed(store, s);
    const seedMs = performance.now() - seedStart;

    const plan = await explainClaim(store);
    const usesIndex = plan.some((line) => line.includes('connections_refresh_due'));

    const tick = () => store.connections.claimDue(NOW, BATCH, LEASE_MS, store.dialect);
    for (let i = 0; i < WARMUP; i++) {
      await tick();
      await resetClaimed(store.db);
    }
    const times: number[] = [];
    for (let i = 0; i < REPS; i++) {
      const t0 = performance.now();
      const claimed = await tick();
      times.push(performance.now() - t0);
      if (claimed.length !== s.due) throw new Error(`${kind} ${s.label}: claimed ${claimed.length}, expected ${s.due}`);
      const reset = await resetClaimed(store.db);
      if (reset !== s.due) throw new Error(`${kind} ${s.label}: reset ${reset} rows, expected ${s.due}`);
    }
    const r: Result = { scenario: s, median: median(times), min: Math.min(...times), max: Math.max(...times), usesIndex };
    console.log(
      `${kind.padEnd(8)} ${s.label} seeded ${fmtInt(s.total)} rows in ${(seedMs / 1000).toFixed(1)} s; ` +
        `tick min ${fmt(r.min)} / median ${fmt(r.median)} / max ${fmt(r.max)} ms`,
    );
    console.log(`${' '.repeat(13)}plan: ${plan.map((l) => l.trim()).join(' | ')}`);
    return r;
  } finally {
    cleanups.delete(t.cleanup);
    await t.cleanup();
  }
}

const fmtInt = (n: number) => n.toLocaleString('en-US');
const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
const fmtPerRow = (ms: number) => (ms >= 0.1 ? ms.toFixed(3) : ms.toFixed(4));

async function main(): Promise<void> {
  const kinds: ('sqlite' | 'postgres')[] = pgUrl ? ['sqlite', 'postgres'] : ['sqlite'];
  const cleanups = new Set<() => Promise<void>>();
  const onSignal = async () => {
    for (const c of cleanups) await c().catch(() => {});
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  console.log(
    `Scheduler claim (claimDue: select due ids + push their due time), batch ${BATCH}, lease ${LEASE_MS / 1000} s, ` +
      `median of ${REPS} ticks after ${WARMUP} warm-up; Node ${process.version}, ${(await import('node:os')).cpus().length} CPUs`,
  );
  if (!pgUrl) console.log('PostgreSQL skipped: pass --pg <url> or set WARRANT_TEST_DATABASE_URL');
  console.log('');

  const results = new Map<string, Result[]>();
  for (const kind of kinds) {
    const rs: Result[] = [];
    for (const s of scenarios) rs.push(await runScenario(kind, s, cleanups));
    results.set(kind, rs);
  }

  console.log('');
  console.log('| store | row | total | due | median tick ms | ms per due row |');
  console.log('|---|---|---:|---:|---:|---:|');
  for (const [kind, rs] of results) {
    for (const r of rs) {
      console.log(`| ${kind} | ${r.scenario.label} | ${fmtInt(r.scenario.total)} | ${fmtInt(r.scenario.due)} | ${fmt(r.median)} | ${fmtPerRow(r.median / r.scenario.due)} |`);
    }
  }
  console.log('');
  console.log('| store | (c)/(a): same due, 100× rows (≈1 expected) | (b)/(c): same rows, 100× due | claim select uses connections_refresh_due |');
  console.log('|---|---:|---:|---|');
  for (const [kind, rs] of results) {
    const [a, b, c] = rs as [Result, Result, Result];
    const idx = rs.every((r) => r.usesIndex) ? 'yes (a, b, c)' : rs.map((r) => `${r.scenario.label} ${r.usesIndex ? 'yes' : 'NO'}`).join(', ');
    console.log(`| ${kind} | ${(c.median / a.median).toFixed(2)} | ${(b.median / c.median).toFixed(1)} | ${idx} |`);
  }
  if (!pgUrl) console.log('\nPostgreSQL skipped: pass --pg <url> or set WARRANT_TEST_DATABASE_URL');
}

await main();
