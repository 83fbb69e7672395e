// What Warrant's authenticated proxy costs on top of a proxy that does nothing else (issue 13),
// measured side by side in one run:
//   (b) a bare pass-through: node:http that replaces Authorization and forwards to the upstream
//       with an undici Pool, streaming the answer back;
//   (c) Warrant's proxy, GET /v1/proxy/{connection}/items with an agent key: agent auth, limits,
//       token read, target and scope policy, response inspection, audit (batched into the store).
// Both call the same upstream API (GET /items, a few hundred bytes of JSON, bearer checked).
//
//   node --import tsx bench/proxy.ts [--store sqlite,postgres] [--concurrency 1,8,32,128]
//     [--rounds 5] [--round-seconds 2] [--warm-seconds 1] [--database-url postgres://…]
//     [--redis redis://…] [--json] [--cpu-prof <dir>] [--count-queries] [--audit-flush-ms <ms>]
//
// Process layout: the load generator, the upstream, the pass-through and Warrant each run in their
// own process (bench/proxy/*.ts, forked with tsx), as in production. On a 2-core machine the four
// compete for the cores, so throughput is bounded by the sum of their CPU per request, not by one
// of them: read the CPU table (µs per request of each process, from process.cpuUsage() around each
// run, reported over IPC) to see where time goes. Warrant is started afresh per store (PostgreSQL:
// in a throwaway schema, dropped at the end); the other three live for the whole run.
//
// Method: per store and concurrency, a warm-up of both targets, then interleaved rounds (b c, c b,
// …) so drift on a shared machine hits both alike; each run also drops its first 250 ms. Read
// c/b (throughput ratio; issue 13 wants ≥ 0.85 at c=32) and, at c=1, "added p50/p99" (per round,
// Warrant's percentile minus the pass-through's, median over rounds; issue 13 wants p99 < 1 ms).
// Every request must answer 200 and every proxied call must be audited, else the bench fails.
// --cpu-prof writes Warrant's V8 profile and prints its self time in Warrant's rounds only, per
// request and grouped; --count-queries prints the store statements per proxied call.
import { rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { startRole, type Role } from './proxy/ipc.ts';
import { findProfile, formatProfile, summarize } from './proxy/profile.ts';
import { aggregate, formatStore, formatTargets, type Row } from './proxy/report.ts';
import { measureStore, RUN_WARM_MS, type Processes, type Target } from './proxy/rounds.ts';
import { parseOptions, storeEnv, usage, writeProvider } from './proxy/setup.ts';
import type { WarrantInfo } from './proxy/warrant.ts';

const o = parseOptions(process.argv.slice(2));
if (!o) {
  console.log(usage);
  process.exit(0);
}
const log = (s: string) => process.stderr.write(`${s}\n`);
const token = `bench-${crypto.randomUUID()}-${crypto.randomUUID()}`;
const started: Role[] = [];
const start = async (name: string, opts: Parameters<typeof startRole>[1]) => {
  const r = await startRole(name, opts);
  started.push(r);
  return r;
};

const upstream = await start('upstream', { env: { BENCH_UPSTREAM_TOKEN: token } });
const upstreamOrigin = upstream.info.origin as string;
const { dir, providersFile } = writeProvider(upstreamOrigin);
const out: string[] = [];
const allRows: Row[] = [];
const targetLines: string[] = [];
let failed: unknown;
try {
  const passthrough = await start('passthrough', { env: { BENCH_UPSTREAM_URL: `${upstreamOrigin}/api`, BENCH_UPSTREAM_TOKEN: token } });
  const load = await start('load', {});
  log(
    `bench/proxy: node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}); stores ${o.stores.join(', ')}; ` +
      `concurrency ${o.concurrencies.join(', ')}; ${o.rounds} rounds x ${o.roundMs / 1000} s per target (after ${o.warmMs / 1000} s warm-up)` +
      (o.redisUrl ? '; Redis on' : ''),
  );
  out.push(
    `Proxy bench: node ${process.version}, ${cpus().length} cores; 4 processes (load generator, upstream, pass-through, Warrant); ` +
      `${o.rounds} interleaved rounds x ${o.roundMs / 1000} s per target and concurrency (first ${RUN_WARM_MS} ms of each dropped); ` +
      `GET /items answers ${upstream.info.bodyBytes} bytes; Redis ${o.redisUrl ? 'on' : 'off'}; log level error; ` +
      `load average at start ${loadavg()[0]!.toFixed(1)} (other work on the machine skews both targets, c more)`,
  );
  for (const kind of o.stores) {
    const se = await storeEnv(kind, o, dir, providersFile);
    let warrant: Role | undefined;
    try {
      warrant = await start('warrant', {
        env: { BENCH_WARRANT_ENV: JSON.stringify(se.env), BENCH_UPSTREAM_TOKEN: token, BENCH_COUNT_QUERIES: o.countQueries ? '1' : '0', ...(o.auditFlushMs !== undefined ? { BENCH_AUDIT_FLUSH_MS: String(o.auditFlushMs) } : {}) },
        execArgv: o.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProfDir] : [],
      });
      const w = warrant.info as unknown as WarrantInfo;
      if (w.dialect !== kind) throw new Error(`expected the ${kind} store, Warrant opened ${w.dialect}`);
      const targets: Target[] = [
        { id: 'b', origin: passthrough.info.origin as string, path: '/items', headers: {} },
        { id: 'c', origin: w.origin, path: `/v1/proxy/${w.connection}/items`, headers: { authorization: `Bearer ${w.agentKey}` } },
      ];
      const bodies = await Promise.all(
        targets.map(async (t) => {
          const res = await fetch(`${t.origin}${t.path}`, { headers: t.headers, signal: AbortSignal.timeout(10_000) });
          const text = await res.text();
          if (res.status !== 200) throw new Error(`(${t.id}) answered ${res.status}: ${text}`);
          return text;
        }),
      );
      if (bodies[0] !== bodies[1]) throw new Error(`(b) and (c) do not serve the same body:\n${bodies.join('\n')}`);
      const auditBefore = await warrant.call<number>('audited');
      log(`${se.label}:`);
      const procs: Processes = { upstream, passthrough, warrant, load };
      const samples = await measureStore(procs, targets, o, log);
      const rows = aggregate(kind, samples);
      allRows.push(...rows);
      const audited = (await warrant.call<number>('audited', {}, 60_000)) - auditBefore;
      // Every request to (c) after the body check, warm-ups included.
      const sentToC = samples.filter((s) => s.target === 'c').reduce((s, x) => s + x.total, 0);
      out.push('', formatStore(se.label, rows), '', `audit: ${audited} proxy.call entries for at least ${sentToC} calls to (c)`);
      targetLines.push(...formatTargets(se.label.replace(/ \(.*/, ''), rows));
      if (audited < sentToC) throw new Error(`${se.label}: some proxied calls were not audited (${audited} < ${sentToC})`);
      const pid = warrant.child.pid!;
      await warrant.stop(30_000);
      if (o.cpuProfDir) {
        const file = findProfile(o.cpuProfDir, pid);
        const cs = samples.filter((s) => s.target === 'c');
        if (file) out.push('', formatProfile(summarize(file, cs.map((s) => s.warrantHr)), cs.reduce((s, x) => s + x.total, 0)));
        else out.push('', `no CPU profile of pid ${pid} in ${o.cpuProfDir}`);
      }
    } finally {
      await warrant?.stop().catch(() => {});
      await se.cleanup();
    }
  }
  out.push('', `load average at the end ${loadavg()[0]!.toFixed(1)}`, '', 'Issue 13 targets:', ...targetLines.map((l) => `- ${l}`));
  console.log(out.join('\n'));
  if (o.json) {
    console.log(JSON.stringify({ node: process.version, cores: cpus().length, redis: Boolean(o.redisUrl), rows: allRows }));
  }
} catch (err) {
  failed = err;
} finally {
  for (const r of started.reverse()) await r.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
if (failed) {
  console.error(failed);
  process.exitCode = 1;
}
