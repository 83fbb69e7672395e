// One pass: load and faults for a fixed time, then the checks that need Warrant up (deliveries
// settled, audit chain, connection states), then the instances stopped and the counts read.
import { loadavg } from 'node:os';
import type { SoakDb } from './db.ts';
import { plan, runPlan, type FaultContext, type FaultWindow, type Revocations } from './faults.ts';
import { startLoad, type CallRecord, type LoadOptions, type World } from './load.ts';
import { rssKiB, sleep, stopProc, type RedisProc, type SandboxProc } from './procs.ts';
import { alertTypes, type AdminClient, type Receiver } from './seed.ts';

export interface SandboxStats {
  refreshRequests: number;
  refreshFailures: number;
  reuseDetected: number;
}

export interface RssRow {
  instance: number;
  pid: number;
  warmKiB?: number;
  endKiB?: number;
  restarted: boolean;
}

export interface ShutdownRow {
  instance: number;
  ms: number;
  code: number | null;
  signal: string | null;
  /** It ignored SIGTERM past the grace and had to be killed. */
  killed: boolean;
}

export interface PassOutcome {
  name: string;
  start: number;
  end: number;
  durationMs: number;
  records: CallRecord[];
  windows: FaultWindow[];
  revoked: Revocations;
  statsStart: SandboxStats;
  statsEnd: SandboxStats;
  /** connection.refreshed audit entries, all time, read with every instance stopped. */
  committedRefreshes: number;
  /** Connections (by index) not `active` at the end, with their status and last error. */
  notActive: { conn: number; status: string; error?: string }[];
  audit: { ok: boolean; entries: number; first_bad?: number; error?: string };
  alertEntries: { seq: number; id: string; type: string; subject: string | null; at: number }[];
  /** connection.refreshed times of the connections not active at the end, by subject. */
  refreshedAt: Map<string, number[]>;
  seqStart: number;
  pendingDeliveries: number;
  rss: RssRow[];
  shutdown: ShutdownRow[];
  /** Exits the soak did not cause (each instance was restarted to go on). */
  crashes: { instance: number; at: number; code: number | null; signal: string | null }[];
  activeConnections: number;
  connectionIds: string[];
  /** When the instances were sent SIGTERM at the end. */
  stopAt: number;
  /** The machine's 1-minute load average as the load started and as it stopped. */
  loadAverage: [number, number];
}

export interface PassDeps {
  name: string;
  durationMs: number;
  warmupMs: number;
  world: World;
  load: LoadOptions;
  sandbox: SandboxProc;
  redis?: RedisProc;
  db: SoakDb;
  appPrefix: string;
  admin: AdminClient;
  receiver: Receiver;
  webhookId: string;
  revoked: Revocations;
  killIndex: number;
  shutdownGraceMs: number;
  log(line: string): void;
}

export async function runPass(d: PassDeps): Promise<PassOutcome> {
  const { world } = d;
  const statsStart = await d.sandbox.control<SandboxStats>('GET', '/stats');
  const seqStart = await d.db.maxSeq();
  const windows: FaultWindow[] = [];
  const rss: RssRow[] = world.instances.map((inst, i) => ({ instance: i, pid: inst.proc!.pid, restarted: false }));
  const timers: NodeJS.Timeout[] = [];
  const warm = (i: number) => {
    const row = rss[i]!;
    row.pid = world.instances[i]!.proc!.pid;
    row.warmKiB = rssKiB(row.pid);
  };

  const loadStart = loadavg()[0]!;
  const start = Date.now();
  const load = startLoad(world, d.load);
  timers.push(setTimeout(() => world.instances.forEach((_, i) => rss[i]!.restarted || warm(i)), d.warmupMs));
  const background: Promise<unknown>[] = [];
  const crashes: PassOutcome['crashes'] = [];
  const ctx: FaultContext = {
    background,
    world,
    sandbox: d.sandbox,
    redis: d.redis,
    db: d.db,
    appPrefix: d.appPrefix,
    admin: d.admin,
    revoked: d.revoked,
    windows,
    killIndex: d.killIndex,
    log: d.log,
    onRestart(i) {
      // A new process: its warm-up is counted from its own start, not the pass's.
      rss[i]!.restarted = true;
      rss[i]!.warmKiB = undefined;
      timers.push(setTimeout(() => warm(i), d.warmupMs));
    },
  };
  world.instances.forEach((inst, i) => {
    inst.onCrash = () => {
      const last = inst.crashes[inst.crashes.length - 1]!;
      crashes.push({ instance: i, ...last });
      d.log(`instance ${i} CRASHED (code ${last.code}, signal ${last.signal}); restarting it`);
      world.up[i] = false;
      background.push(
        inst.start().then(
          () => ((world.up[i] = true), ctx.onRestart(i)),
          (err: Error) => d.log(`instance ${i} could not be restarted: ${err.message}`),
        ),
      );
    };
  });
  const progress = setInterval(() => {
    const recent = load.records.filter((r) => r.t1 > Date.now() - 10_000);
    const failed = recent.filter((r) => r.code !== 'ok').length;
    d.log(`${d.name}: ${((Date.now() - start) / 1000).toFixed(0)} s, ${load.records.length} calls, last 10 s: ${recent.length} calls, ${failed} failed`);
  }, 15_000);
  await runPlan(plan(d.durationMs, !!d.redis), start, d.durationMs, ctx);
  const left = start + d.durationMs - Date.now();
  if (left > 0) await sleep(left);
  clearInterval(progress);
  timers.forEach(clearTimeout);
  world.instances.forEach((inst, i) => (rss[i]!.endKiB = rssKiB(inst.proc!.pid)));
  await load.stop();
  const end = Date.now();
  const loadEnd = loadavg()[0]!;
  // Restarts still under way (a crash near the end) finish before the checks.
  for (let n = 0; n < background.length; n++) await background[n];
  d.log(`${d.name}: load stopped after ${((end - start) / 1000).toFixed(0)} s, ${load.records.length} calls; settling`);

  // Let the webhook worker drain what the faults caused.
  const origin = world.instances[Math.max(0, world.up.findIndex(Boolean))]!.origin;
  let pendingDeliveries = -1;
  const settleUntil = Date.now() + 30_000;
  while (Date.now() < settleUntil) {
    const got = await d.admin.call(origin, 'GET', `/v1/webhooks/${d.webhookId}/deliveries?status=pending&limit=500`).catch(() => undefined);
    pendingDeliveries = got?.status === 200 ? (got.json.deliveries as unknown[]).length : -1;
    if (pendingDeliveries === 0) break;
    await sleep(1_000);
  }
  await sleep(1_500);

  const audit = await d.admin.call(origin, 'GET', '/v1/audit/verify').then(
    (r) => (r.status === 200 ? r.json : { ok: false, entries: 0, error: `HTTP ${r.status} ${r.json?.code ?? ''}` }),
    (err: Error) => ({ ok: false, entries: 0, error: err.message }),
  );
  const listed = (await d.admin.ok(origin, 'GET', '/v1/connections').catch((err: Error) => {
    d.log(`could not list connections: ${err.message}`);
    return { connections: [] };
  })) as { connections: { id: string; status: string; last_error?: string }[] };
  const byId = new Map(listed.connections.map((c) => [c.id, c]));
  const notActive = world.connectionIds
    .map((id, conn) => ({ conn, row: byId.get(id) }))
    .filter(({ row }) => row?.status !== 'active')
    .map(({ conn, row }) => ({ conn, status: row?.status ?? 'missing', error: row?.last_error }));

  d.log(`${d.name}: stopping the instances (SIGTERM)`);
  const stopAt = Date.now();
  const shutdown = await Promise.all(
    world.instances.map(async (inst, i) => {
      world.up[i] = false;
      inst.onCrash = undefined;
      inst.stopping = true;
      const r = await stopProc(inst.proc!, d.shutdownGraceMs);
      return { instance: i, ms: r.ms, code: r.code, signal: r.signal, killed: r.killed };
    }),
  );
  const statsEnd = await d.sandbox.control<SandboxStats>('GET', '/stats');
  const committedRefreshes = await d.db.countAudit('connection.refreshed');
  const alertEntries = await d.db.auditEntries(0, alertTypes);
  const refreshedAt = await d.db.auditTimes('connection.refreshed', notActive.map((n) => `connection:${world.connectionIds[n.conn]}`));
  return {
    name: d.name,
    start,
    end,
    durationMs: end - start,
    records: load.records,
    windows,
    revoked: d.revoked,
    statsStart,
    statsEnd,
    committedRefreshes,
    notActive,
    audit,
    alertEntries,
    refreshedAt,
    seqStart,
    pendingDeliveries,
    rss,
    shutdown,
    crashes,
    connectionIds: world.connectionIds,
    loadAverage: [loadStart, loadEnd],
    stopAt,
    activeConnections: world.connectionIds.length - d.revoked.idp.size - d.revoked.deleted.size,
  };
}
