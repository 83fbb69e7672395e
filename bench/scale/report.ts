// bench/scale.ts's summary tables.
import type { TickResult } from './tick.ts';
import type { InstanceResult } from './instance.ts';

export interface Sizes {
  n: number;
  tables: { table: string; rows: number; total: number; heap: number; indexes: number; toast: number }[];
}

export interface ScaleResult {
  command: string;
  node: string;
  cpus: number;
  connections: number;
  active: number;
  seedSeconds: number;
  baselineSeedSeconds?: number;
  ticks: (TickResult & { claimNodes: string[]; nextDueNodes: string[] })[];
  sizes: Sizes;
  instance: InstanceResult;
  audit?: { rows: number; total: number };
  redis?: { before?: { usedMemory: number; keys: number }; warm?: { usedMemory: number; keys: number } };
  totalSeconds: number;
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const ms = (x: number) => (x >= 10 ? x.toFixed(1) : x.toFixed(2));

export function printSummary(r: ScaleResult, out: (s: string) => void): void {
  out('');
  out(`${r.command}   (node ${r.node}, ${r.cpus} CPUs; seeding ${r.seedSeconds.toFixed(1)} s${r.baselineSeedSeconds !== undefined ? ` + ${r.baselineSeedSeconds.toFixed(1)} s for the 10k baseline` : ''}; total ${r.totalSeconds.toFixed(0)} s)`);
  out('');
  out('Scheduler tick (claimDue + nextDueAt), median / min / max ms:');
  out('| connections | shape | due rows | median | min | max |');
  out('|---:|---|---:|---:|---:|---:|');
  for (const t of r.ticks) for (const s of t.shapes) out(`| ${int(t.n)} | ${s.shape} | ${s.due} | ${ms(s.medianMs)} | ${ms(s.minMs)} | ${ms(s.maxMs)} |`);
  const [a, b] = r.ticks;
  if (a && b) {
    for (let i = 0; i < a.shapes.length; i++) {
      out(`ratio ${int(b.n)} / ${int(a.n)}, ${a.shapes[i]!.shape}: ${(b.shapes[i]!.medianMs / a.shapes[i]!.medianMs).toFixed(2)}×`);
    }
  }
  for (const t of r.ticks) {
    out(`plan at ${int(t.n)}, claim: ${t.claimNodes.join(' > ')}`);
    out(`plan at ${int(t.n)}, nextDueAt: ${t.nextDueNodes.join(' > ')}`);
    const exec = (p: string[]) => p.find((l) => l.startsWith('Execution Time'))?.trim() ?? '';
    out(`  claim ${exec(t.claimPlan)}; nextDueAt ${exec(t.nextDuePlan)}`);
  }
  out('');
  out(`Store size at ${int(r.sizes.n)} connections:`);
  out('| table | rows | total MiB | heap | TOAST | indexes | bytes per connection |');
  out('|---|---:|---:|---:|---:|---:|---:|');
  let perConnection = 0;
  for (const t of r.sizes.tables) {
    const per = t.total / r.sizes.n;
    if (t.table === 'connections' || t.table === 'secrets') perConnection += per;
    out(`| ${t.table} | ${int(t.rows)} | ${mib(t.total)} | ${mib(t.heap)} | ${mib(t.toast)} | ${mib(t.indexes)} | ${int(per)} |`);
  }
  out(`connections + secrets: ${int(perConnection)} bytes per connection (${(perConnection * 1e6 / 2 ** 30).toFixed(2)} GiB per million)`);
  const grants = r.sizes.tables.find((t) => t.table === 'grants');
  if (grants?.rows) out(`grants: ${int(grants.total / grants.rows)} bytes per grant`);
  if (r.audit) out(`audit_events after the warm-up: ${int(r.audit.rows)} entries, ${mib(r.audit.total)} MiB, ${int(r.audit.total / r.audit.rows)} bytes per entry`);
  out('');
  out(`One instance, ${int(r.active)} active connections (${int(r.instance.calls)} proxy calls, ${int(r.instance.callsPerSecond)} calls/s during the warm-up, not a throughput figure):`);
  out('| point | connections called | heap used MiB | RSS MiB | external MiB |');
  out('|---|---:|---:|---:|---:|');
  for (const p of r.instance.points) out(`| ${p.label} | ${int(p.connections)} | ${mib(p.heapUsed)} | ${mib(p.rss)} | ${mib(p.external)} |`);
  const [cold, tenth, full, second] = r.instance.points as [typeof r.instance.points[0], typeof r.instance.points[0], typeof r.instance.points[0], typeof r.instance.points[0]];
  const span = full.connections - tenth.connections;
  out(
    `per active connection (warm 100% − warm 10%) / ${int(span)}: heap ${int((full.heapUsed - tenth.heapUsed) / span)} B, RSS ${int((full.rss - tenth.rss) / span)} B; ` +
      `(warm 100% − cold) / ${int(full.connections)}: heap ${int((full.heapUsed - cold.heapUsed) / full.connections)} B, RSS ${int((full.rss - cold.rss) / full.connections)} B; ` +
      `second pass − warm 100%: heap ${mib(second.heapUsed - full.heapUsed)} MiB`,
  );
  if (r.redis?.before && r.redis.warm) {
    out(`Redis used_memory: ${mib(r.redis.before.usedMemory)} MiB before, ${mib(r.redis.warm.usedMemory)} MiB warm (Δ ${mib(r.redis.warm.usedMemory - r.redis.before.usedMemory)} MiB); keys in its db ${r.redis.before.keys} → ${r.redis.warm.keys}`);
  }
}
