// The measured part for one store: per concurrency, a warm-up of both targets, then interleaved
// rounds (b c, then c b, …) so drift on a shared machine hits both alike. Around each run every
// server process reports its CPU, so CPU per request is known per process and per target.
import { readFileSync } from 'node:fs';
import type { Role } from './ipc.ts';
import type { RunRequest, RunResult } from './load.ts';
import type { QueryCounts } from './warrant.ts';

export type TargetId = 'b' | 'c';

export interface Target {
  id: TargetId;
  origin: string;
  path: string;
  headers: Record<string, string>;
}

export interface Sample {
  target: TargetId;
  concurrency: number;
  round: number;
  /** Requests in the recorded window, and in the whole run (warm part included). */
  count: number;
  total: number;
  windowMs: number;
  /** Sorted, ms. */
  latencies: Float64Array;
  /** CPU of each process over the whole run, ms. */
  cpuMs: { upstream: number; passthrough: number; warrant: number; load: number };
  /** Wall time of the whole run, ms. */
  spanMs: number;
  /** CPU of the whole machine over the run, ms (/proc/stat; PostgreSQL and anything else included; NaN off Linux). */
  machineMs: number;
  /** Warrant's monotonic clock at the run's start and end, µs (CPU profile windows). */
  warrantHr: [number, number];
  /** Store statements during the run (with --count-queries). */
  queries?: QueryCounts;
}

export interface Processes {
  upstream: Role;
  passthrough: Role;
  warrant: Role;
  load: Role;
}

/** Each run discards what ends in its first 250 ms (connections re-warm between rounds). */
export const RUN_WARM_MS = 250;

function diffQueries(a: QueryCounts, b: QueryCounts): QueryCounts {
  const bySql: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.bySql)) if (v - (a.bySql[k] ?? 0) > 0) bySql[k] = v - (a.bySql[k] ?? 0);
  return { total: b.total - a.total, bySql };
}

/** Busy CPU time of the whole machine so far, ms (all cores; NaN where /proc/stat is absent). */
function machineBusyMs(): number {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal …: everything but idle and iowait is busy.
    const busy = cpu.reduce((s, v) => s + v, 0) - cpu[3]! - (cpu[4] ?? 0);
    return (busy * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}

async function runOnce(p: Processes, t: Target, concurrency: number, warmMs: number, durationMs: number, countQueries: boolean) {
  const servers = [p.upstream, p.passthrough, p.warrant];
  const [before, q0] = await Promise.all([Promise.all(servers.map((s) => s.cpu())), countQueries ? p.warrant.call<QueryCounts>('queries') : undefined]);
  const machine0 = machineBusyMs();
  const req: RunRequest = { origin: t.origin, path: t.path, headers: t.headers, concurrency, warmMs, durationMs };
  const result = await p.load.call<RunResult>('run', { ...req }, warmMs + durationMs + 60_000);
  const machine1 = machineBusyMs();
  const [after, q1] = await Promise.all([Promise.all(servers.map((s) => s.cpu())), countQueries ? p.warrant.call<QueryCounts>('queries') : undefined]);
  if (result.errors) throw new Error(`(${t.id}) c=${concurrency}: ${result.errors} failed requests, first: ${result.firstError}`);
  const d = (i: number) => after[i]!.cpuMs - before[i]!.cpuMs;
  return {
    result,
    cpuMs: { upstream: d(0), passthrough: d(1), warrant: d(2), load: result.cpuMs },
    spanMs: (after[2]!.hrUs - before[2]!.hrUs) / 1000,
    machineMs: machine1 - machine0,
    warrantHr: [before[2]!.hrUs, after[2]!.hrUs] as [number, number],
    queries: q0 && q1 ? diffQueries(q0, q1) : undefined,
  };
}

export async function measureStore(
  p: Processes,
  targets: Target[],
  o: { concurrencies: number[]; rounds: number; roundMs: number; warmMs: number; countQueries: boolean },
  log: (s: string) => void,
): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (const concurrency of o.concurrencies) {
    for (const t of targets) if (o.warmMs > 0) await runOnce(p, t, concurrency, o.warmMs, 1, false);
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const t of order) {
        const r = await runOnce(p, t, concurrency, RUN_WARM_MS, o.roundMs, o.countQueries);
        samples.push({
          target: t.id,
          concurrency,
          round,
          count: r.result.count,
          total: r.result.total,
          windowMs: r.result.windowMs,
          latencies: r.result.latencies.sort(),
          cpuMs: r.cpuMs,
          spanMs: r.spanMs,
          machineMs: r.machineMs,
          warrantHr: r.warrantHr,
          queries: r.queries,
        });
        log(`  c=${concurrency} round ${round + 1}/${o.rounds} (${t.id}): ${Math.round(r.result.count / (r.result.windowMs / 1000))} rps`);
      }
    }
  }
  return samples;
}
