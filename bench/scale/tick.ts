// The scheduler tick's database cost (src/tokens/scheduler.ts tick() + nextDelay()): one claimDue
// (select the due ids FOR UPDATE SKIP LOCKED, push their due time a lease ahead, return the rows),
// then, when the batch was not full, nextDueAt (the earliest due time left). The refreshes a tick
// then runs are provider HTTP calls, the same cost whatever the table's size: not timed here.
//
// Two shapes of tick on each table, timed the same way (a full GC first, median of `reps`, the
// tables interleaved so load from elsewhere falls on all of them alike):
//   fixed    10 rows due, whatever the table's size: how the cost follows the table alone;
//   steady   the rows that fall due in one scheduler interval (5 s) when N expiries are spread
//            over 24 h: N × 5 / 86,400 (58 at 1M, 1 at 10k), capped at the batch of 200.
// "now" is chosen per shape as the k-th earliest due time; claimed rows are put back (untimed).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CompiledQuery, sql } from 'kysely';
import type { Store } from '../../src/store/index.ts';
import { SKEW_MS } from './seed.ts';
import { claimDueQuery, nextDueQuery } from '../../src/store/connections.ts';

const BATCH = 200;
const LEASE_MS = 60_000;
const INTERVAL_MS = 5_000;
const WARMUP = 5;

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

export interface TickTarget {
  label: string;
  n: number;
  store: Store;
}

export interface TickShape {
  shape: 'fixed' | 'steady';
  due: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
}

export interface TickResult {
  label: string;
  n: number;
  shapes: TickShape[];
  /** EXPLAIN (ANALYZE, BUFFERS) of the claim (rolled back) and of nextDueAt, steady shape. */
  claimPlan: string[];
  nextDuePlan: string[];
}

export const steadyDue = (n: number) => Math.min(BATCH, Math.max(1, Math.round((n * INTERVAL_MS) / 86_400_000)));

/** The k-th earliest due time among claimable rows: claimDue(that) claims exactly k. */
async function nowFor(store: Store, k: number): Promise<number> {
  const r = await sql<{ d: string }>`select refresh_due_at as d from connections where refresh_due_at is not null and status in ('active', 'error') order by refresh_due_at offset ${k - 1} limit 1`.execute(store.db);
  return Number(r.rows[0]!.d);
}

async function putBack(store: Store, ids: string[]): Promise<void> {
  await store.db
    .updateTable('connections')
    .set((eb) => ({ refresh_due_at: eb('expires_at', '-', SKEW_MS) }))
    .where('id', 'in', ids)
    .execute();
}

async function oneTick(store: Store, now: number, due: number): Promise<number> {
  collectGarbage();
  const t0 = performance.now();
  const claimed = await store.connections.claimDue(now, BATCH, LEASE_MS, 'postgres');
  if (claimed.length < BATCH) await store.connections.nextDueAt();
  const ms = performance.now() - t0;
  if (claimed.length !== due) throw new Error(`claimed ${claimed.length}, expected ${due}`);
  await putBack(store, claimed.map((r) => r.id));
  return ms;
}

async function explain(store: Store, q: { sql: string; parameters: readonly unknown[] }): Promise<string[]> {
  // ANALYZE runs the statement: in a transaction that is rolled back.
  return store.db.connection().execute(async (c) => {
    await c.executeQuery(CompiledQuery.raw('begin'));
    try {
      const r = await c.executeQuery<Record<string, string>>(CompiledQuery.raw(`explain (analyze, buffers) ${q.sql}`, [...q.parameters]));
      return r.rows.map((row) => row['QUERY PLAN']!);
    } finally {
      await c.executeQuery(CompiledQuery.raw('rollback'));
    }
  });
}

/** The node types of a text plan, outermost first ("Index Scan using connections_refresh_due on connections"). */
export function planNodes(plan: string[]): string[] {
  const out: string[] = [];
  for (const line of plan) {
    const m = /^\s*(?:->\s+)?(.+?)\s+\(cost=/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

export async function measureTicks(targets: TickTarget[], reps: number): Promise<TickResult[]> {
  const plans = [];
  for (const t of targets) {
    const fixedNow = await nowFor(t.store, 10);
    const steady = steadyDue(t.n);
    const steadyNow = await nowFor(t.store, steady);
    plans.push({
      t,
      runs: [
        { shape: 'fixed' as const, due: 10, now: fixedNow, times: [] as number[] },
        { shape: 'steady' as const, due: steady, now: steadyNow, times: [] as number[] },
      ],
      claimPlan: await explain(t.store, claimDueQuery(t.store.db, steadyNow, BATCH, LEASE_MS, 'postgres').compile()),
      nextDuePlan: await explain(t.store, nextDueQuery(t.store.db).compile()),
    });
  }
  for (let round = 0; round < WARMUP + reps; round++) {
    const order = round % 2 ? [...plans].reverse() : plans;
    for (const p of order) for (const run of p.runs) {
      const ms = await oneTick(p.t.store, run.now, run.due);
      if (round >= WARMUP) run.times.push(ms);
    }
  }
  return plans.map((p) => ({
    label: p.t.label,
    n: p.t.n,
    shapes: p.runs.map((r) => {
      const s = [...r.times].sort((a, b) => a - b);
      const m = s.length >> 1;
      return { shape: r.shape, due: r.due, medianMs: s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2, minMs: s[0]!, maxMs: s[s.length - 1]! };
    }),
    claimPlan: p.claimPlan,
    nextDuePlan: p.nextDuePlan,
  }));
}
