// Aggregation and the printed report. Throughput = requests in all windows / all windows; p50/p99
// over every recorded latency; added latency = per round, Warrant's percentile minus the
// pass-through's in the same round, then the median over rounds (drift between rounds cancels).
// CPU per request = a process's CPU over the runs / requests completed in those runs.
import type { Sample, TargetId } from './rounds.ts';

const PROCS = ['upstream', 'passthrough', 'warrant', 'load'] as const;
type Proc = (typeof PROCS)[number];

export interface TargetStats {
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p50: number;
  p99: number;
  requests: number;
  /** CPU µs per request of each process during this target's runs. */
  cpuUsPerReq: Record<Proc, number>;
  /** Cores each process used during this target's runs (1 = one core busy). */
  cores: Record<Proc, number>;
  /** Cores the whole machine kept busy during these runs: the four processes, PostgreSQL, anything else. */
  machineCores: number;
}

export interface Row {
  store: string;
  concurrency: number;
  b: TargetStats;
  c: TargetStats;
  ratio: number;
  addedP50: number;
  addedP99: number;
  /** Store statements per proxied call (with --count-queries). */
  queriesPerCall?: number;
  topQueries?: { sql: string; perCall: number }[];
}

export function percentile(sorted: Float64Array, p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};

function stats(list: Sample[]): TargetStats {
  const count = list.reduce((s, x) => s + x.count, 0);
  const total = list.reduce((s, x) => s + x.total, 0);
  const span = list.reduce((s, x) => s + x.spanMs, 0);
  const all = new Float64Array(count);
  let o = 0;
  for (const x of list) {
    all.set(x.latencies, o);
    o += x.latencies.length;
  }
  all.sort();
  const perProc = (f: (cpuMs: number) => number) => Object.fromEntries(PROCS.map((p) => [p, f(list.reduce((s, x) => s + x.cpuMs[p], 0))])) as Record<Proc, number>;
  const rpsOf = (x: Sample) => x.count / (x.windowMs / 1000);
  return {
    rps: count / (list.reduce((s, x) => s + x.windowMs, 0) / 1000),
    rpsMin: Math.min(...list.map(rpsOf)),
    rpsMax: Math.max(...list.map(rpsOf)),
    p50: percentile(all, 50),
    p99: percentile(all, 99),
    requests: total,
    cpuUsPerReq: perProc((ms) => (ms * 1000) / total),
    cores: perProc((ms) => ms / span),
    machineCores: list.reduce((s, x) => s + x.machineMs, 0) / span,
  };
}

export function aggregate(store: string, samples: Sample[]): Row[] {
  const rows: Row[] = [];
  for (const concurrency of [...new Set(samples.map((s) => s.concurrency))]) {
    const of = (t: TargetId) => samples.filter((s) => s.concurrency === concurrency && s.target === t);
    const b = of('b');
    const c = of('c');
    const rounds = [...new Set(c.map((s) => s.round))];
    const added = (p: number) =>
      median(rounds.map((r) => percentile(c.find((s) => s.round === r)!.latencies, p) - percentile(b.find((s) => s.round === r)!.latencies, p)));
    const bs = stats(b);
    const cs = stats(c);
    const row: Row = { store, concurrency, b: bs, c: cs, ratio: cs.rps / bs.rps, addedP50: added(50), addedP99: added(99) };
    if (c.every((s) => s.queries)) {
      const calls = c.reduce((s, x) => s + x.total, 0);
      const bySql = new Map<string, number>();
      for (const s of c) for (const [k, v] of Object.entries(s.queries!.bySql)) bySql.set(k, (bySql.get(k) ?? 0) + v);
      row.queriesPerCall = c.reduce((s, x) => s + x.queries!.total, 0) / calls;
      row.topQueries = [...bySql].map(([sql, n]) => ({ sql, perCall: n / calls })).sort((x, y) => y.perCall - x.perCall).slice(0, 8);
    }
    rows.push(row);
  }
  return rows;
}

const f = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
const i = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');

export function formatStore(label: string, rows: Row[]): string {
  const out = [
    `### ${label}`,
    '',
    '| conc. | (b) rps | (c) rps | c/b | (b) p50 ms | (b) p99 ms | (c) p50 ms | (c) p99 ms | added p50 ms | added p99 ms | (c) rps per round |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.concurrency} | ${i(r.b.rps)} | ${i(r.c.rps)} | **${f(r.ratio)}** | ${f(r.b.p50, 3)} | ${f(r.b.p99, 3)} | ${f(r.c.p50, 3)} | ${f(r.c.p99, 3)} | ${f(r.addedP50, 3)} | ${f(r.addedP99, 3)} | ${i(r.c.rpsMin)}–${i(r.c.rpsMax)} |`,
    ),
    '',
    'CPU per request (µs) of each process, and cores it kept busy, during the runs of each target:',
    '',
    '| conc. | target | upstream | pass-through | Warrant | load gen. | cores: upstream / pass-through / Warrant / load | machine busy (cores) |',
    '|---:|---|---:|---:|---:|---:|---|---:|',
  ];
  for (const r of rows) {
    for (const [t, s] of [['(b)', r.b], ['(c)', r.c]] as const) {
      out.push(
        `| ${r.concurrency} | ${t} | ${i(s.cpuUsPerReq.upstream)} | ${i(s.cpuUsPerReq.passthrough)} | ${i(s.cpuUsPerReq.warrant)} | ${i(s.cpuUsPerReq.load)} | ${PROCS.map((p) => f(s.cores[p])).join(' / ')} | ${f(s.machineCores)} |`,
      );
    }
  }
  const q = rows.filter((r) => r.queriesPerCall !== undefined);
  if (q.length) {
    out.push('', 'Store statements per proxied call (Kysely, main thread; the SQLite audit writer thread is not counted):', '');
    for (const r of q) {
      out.push(`- c=${r.concurrency}: ${f(r.queriesPerCall!, 3)} per call`);
      for (const t of r.topQueries!) out.push(`    ${f(t.perCall, 3)}  ${t.sql.replace(/\s+/g, ' ').slice(0, 160)}`);
    }
  }
  return out.join('\n');
}

/** Issue 13's targets, per store: c/b ≥ 0.85 at c=32, p99 added at c=1 under 1 ms. */
export function formatTargets(label: string, rows: Row[]): string[] {
  const at = (c: number) => rows.find((r) => r.concurrency === c);
  const out: string[] = [];
  const r32 = at(32);
  const r1 = at(1);
  if (r32) out.push(`${label}: c/b at c=32 = ${f(r32.ratio)} (target ≥ 0.85: ${r32.ratio >= 0.85 ? 'MET' : 'MISSED'})`);
  if (r1) out.push(`${label}: p99 added at c=1 = ${f(r1.addedP99, 3)} ms, p50 ${f(r1.addedP50, 3)} ms (target p99 < 1 ms: ${r1.addedP99 < 1 ? 'MET' : 'MISSED'})`);
  return out;
}
