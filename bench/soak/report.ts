// What a pass shows: every failed call either explained by a fault (expected) or not (unexpected),
// refreshes against expiries, refresh-token reuse, grants lost, the audit chain, one alert per
// incident, memory, shutdown. Each invariant is a check that fails the run, or warns.
import type { CallRecord } from './load.ts';
import type { PassOutcome } from './pass.ts';
import type { Delivery } from './seed.ts';
import { deathsOf, expectedReason, type Death } from './classify.ts';

export { deathsOf, type Death };

export interface Check {
  name: string;
  ok: boolean;
  /** `warn`: reported, does not fail the run. */
  level: 'fail' | 'warn';
  detail: string;
}

export interface PassReport {
  name: string;
  durationS: number;
  calls: number;
  succeeded: number;
  callsPerS: number;
  loadAverage: [number, number];
  /** Of calls answered 2xx through Warrant (not the direct use of exported tokens), ms. */
  latencyMs: { p50: number; p99: number; max: number };
  failures: { code: string; expected: number; unexpected: number; reasons: string[] }[];
  unexpectedSamples: { atS: number; tookS: number; instance: number; connection: number; connectionId: string; agent: number; op: string; status: number; code: string }[];
  windows: { kind: string; startS: number; endS: number; note: string; calls: number; failed: Record<string, number>; lastFailureAfterEndS?: number }[];
  refreshes: { idpOk: number; idpFailed: number; expiries: number; expectedAhead: number; committed: number; answersLost: number };
  reuses: number;
  grantsLost: { conn: number; status: string; error?: string; atS?: number; after: string }[];
  /** Lost grants by what ate their last refresh answer (see causeOf). */
  lostAfter: Record<string, number>;
  audit: PassOutcome['audit'];
  alerts: { type: string; incidents: number; delivered: number; missing: number; duplicates: number }[];
  alertsUnknown: number;
  badSignatures: number;
  rss: { instance: number; pid: number; warmMiB?: number; endMiB?: number; growthPct?: number; restarted: boolean }[];
  shutdown: PassOutcome['shutdown'];
  crashes: { instance: number; atS: number; code: number | null; signal: string | null }[];
  checks: Check[];
}

export interface ReportOptions {
  tokenTtlS: number;
  skewFraction: number;
  /** RSS growth over this fails the run (a warning when `rssWarnOnly`). */
  rssGrowthPct: number;
  rssWarnOnly: boolean;
  /** Committed-vs-IdP balance before this pass (answers lost in earlier passes). */
  answersLostBefore: number;
  /** Connections already lost in earlier passes, not counted again. */
  lostBefore: Set<number>;
  /** Process deaths and store faults of earlier passes, their SIGTERM at the end included (a drain
   *  that abandons a refresh loses its answer too): a grant can be lost in one pass and found dead
   *  in the next. */
  priorDeaths: Death[];
}

function latency(records: CallRecord[]): PassReport['latencyMs'] {
  const ms = records.filter((r) => r.code === 'ok' && r.op !== 'export_use').map((r) => r.t1 - r.t0).sort((a, b) => a - b);
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99), max: ms[ms.length - 1] ?? 0 };
}

const mib = (k?: number) => (k === undefined ? undefined : Math.round(k / 102.4) / 10);

export function summarize(p: PassOutcome, received: Delivery[], o: ReportOptions): PassReport {
  const rel = (t: number) => Math.round((t - p.start) / 100) / 10;
  const failed = p.records.filter((r) => r.code !== 'ok');
  const byCode = new Map<string, { code: string; expected: number; unexpected: number; reasons: Set<string> }>();
  const unexpected: CallRecord[] = [];
  for (const r of failed) {
    const why = expectedReason(r, p.windows, p.revoked, o.lostBefore);
    const row = byCode.get(r.code) ?? { code: r.code, expected: 0, unexpected: 0, reasons: new Set<string>() };
    if (why) (row.expected++, row.reasons.add(why));
    else (row.unexpected++, unexpected.push(r));
    byCode.set(r.code, row);
  }

  const windows = p.windows.map((w) => {
    const inside = p.records.filter((r) => r.t1 >= w.start && r.t0 <= w.end + w.graceMs);
    const failedIn: Record<string, number> = {};
    for (const r of inside) if (r.code !== 'ok') failedIn[r.code] = (failedIn[r.code] ?? 0) + 1;
    // How long after the fault ended calls still failed for the fault's reason (recovery time).
    const codes = w.kind === 'idp_outage' ? ['refresh_unavailable', 'upstream_auth_failed'] : w.kind === 'kill' ? [] : ['unavailable', 'internal_error'];
    const late = p.records.filter((r) => r.t1 > w.end && codes.includes(r.code)).map((r) => r.t1);
    return {
      kind: w.kind,
      startS: rel(w.start),
      endS: rel(w.end),
      note: w.note,
      calls: inside.length,
      failed: failedIn,
      ...(late.length ? { lastFailureAfterEndS: Math.round((Math.max(...late) - w.end) / 100) / 10 } : {}),
    };
  });

  const okStart = p.statsStart.refreshRequests - p.statsStart.refreshFailures;
  const okEnd = p.statsEnd.refreshRequests - p.statsEnd.refreshFailures;
  const expiries = (p.activeConnections * p.durationMs) / 1000 / o.tokenTtlS;
  // IdP successes whose answer never reached the store: the kill window of docs/token-lifecycle.md.
  const answersLost = okEnd - p.committedRefreshes - o.answersLostBefore;
  const refreshes = {
    idpOk: okEnd - okStart,
    idpFailed: p.statsEnd.refreshFailures - p.statsStart.refreshFailures,
    expiries: Math.round(expiries),
    expectedAhead: Math.round(expiries / (1 - o.skewFraction)),
    committed: p.committedRefreshes,
    answersLost,
  };
  const reuses = p.statsEnd.reuseDetected - p.statsStart.reuseDetected;
  const deliberate = (c: number) => p.revoked.idp.has(c) || p.revoked.deleted.has(c);
  const lostAt = new Map<number, number>();
  for (const e of p.alertEntries) {
    if (e.type !== 'connection.reauth_required') continue;
    const c = p.connectionIds.indexOf((e.subject ?? '').replace(/^connection:/, ''));
    if (c >= 0 && !lostAt.has(c)) lostAt.set(c, e.at);
  }
  // What ate the refresh answer of each lost grant: its last committed refresh (R) and its
  // reauth_required (the IdP refusing a consumed refresh token) bracket the refresh whose answer
  // never reached the store. A process death or a store fault between them explains it (the window
  // of docs/token-lifecycle.md "Crashes"); otherwise a write refused after the IdP answered.
  const deaths = [...deathsOf(p), ...o.priorDeaths];
  const redisBack = p.windows.filter((w) => w.kind === 'redis_down').map((w) => w.end);
  const causeOf = (conn: number, at: number | undefined): string => {
    if (at === undefined) return 'unknown';
    const refreshed = (p.refreshedAt.get(`connection:${p.connectionIds[conn]}`) ?? []).filter((t) => t < at);
    const since = refreshed.length ? refreshed[refreshed.length - 1]! : -Infinity;
    // Several candidates: the table names them all, latest first; the soak cannot tell which one it was.
    const between = [...new Set(deaths.filter((d) => d.at > since && d.at <= at).sort((a, b) => b.at - a.at).map((d) => d.label))];
    if (between.length) return between.join(' or ');
    if (redisBack.some((t) => t <= at)) return 'after a Redis restart';
    return 'no fault';
  };
  const grantsLost = p.notActive
    .filter((n) => !deliberate(n.conn) && !o.lostBefore.has(n.conn))
    .map((n) => {
      const at = lostAt.get(n.conn);
      return { ...n, ...(at !== undefined ? { atS: rel(at) } : {}), after: causeOf(n.conn, at) };
    });
  const lostAfter: Record<string, number> = {};
  for (const g of grantsLost) lostAfter[g.after] = (lostAfter[g.after] ?? 0) + 1;

  // One alert per incident: each incident entry of this pass delivered under exactly one webhook-id.
  const knownEvents = new Set(p.alertEntries.map((e) => e.id));
  const ids = new Map<string, Set<string>>();
  for (const d of received) ids.set(d.eventId, (ids.get(d.eventId) ?? new Set()).add(d.webhookId));
  const alerts = new Map<string, PassReport['alerts'][number]>();
  for (const e of p.alertEntries.filter((x) => x.seq > p.seqStart)) {
    const row = alerts.get(e.type) ?? { type: e.type, incidents: 0, delivered: 0, missing: 0, duplicates: 0 };
    const got = ids.get(e.id)?.size ?? 0;
    row.incidents++;
    if (got) row.delivered++;
    else row.missing++;
    if (got > 1) row.duplicates++;
    alerts.set(e.type, row);
  }
  const alertsUnknown = received.filter((d) => !knownEvents.has(d.eventId)).length;
  const badSignatures = received.filter((d) => !d.signatureOk).length;
  const alertRows = [...alerts.values()].sort((a, b) => a.type.localeCompare(b.type));
  const connIndex = new Map(p.connectionIds.map((id, i) => [`connection:${id}`, i]));
  const reauth = p.alertEntries.filter((e) => e.seq > p.seqStart && e.type === 'connection.reauth_required').map((e) => connIndex.get(e.subject ?? '') ?? -1);
  const inPass = (m: Map<number, number>) => new Set([...m].filter(([, t]) => t >= p.start && t <= p.end).map(([c]) => c));
  const revokedHere = inPass(p.revoked.idp);
  const reauthOnRevoked = reauth.filter((c) => revokedHere.has(c));
  const reauthOnDeleted = reauth.filter((c) => inPass(p.revoked.deleted).has(c));
  const reauthTwice = reauthOnRevoked.length - new Set(reauthOnRevoked).size;

  const rss = p.rss.map((r) => ({
    instance: r.instance,
    pid: r.pid,
    warmMiB: mib(r.warmKiB),
    endMiB: mib(r.endKiB),
    growthPct: r.warmKiB && r.endKiB ? Math.round(((r.endKiB - r.warmKiB) / r.warmKiB) * 1000) / 10 : undefined,
    restarted: r.restarted,
  }));
  const worstRss = Math.max(...rss.map((r) => r.growthPct ?? 0));

  const lateAgentCalls = p.records
    .filter((r) => r.code === 'ok' && r.op !== 'export_use' && r.t0 > (p.revoked.agentsDone.get(r.agent) ?? Infinity))
    .map((r) => r.t0 - p.revoked.agentsDone.get(r.agent)!);
  const checks: Check[] = [
    { name: 'unexpected failures', ok: unexpected.length === 0, level: 'fail', detail: `${unexpected.length} of ${p.records.length} calls` },
    {
      name: 'refresh-token reuses seen by the IdP',
      ok: reuses === 0,
      level: 'fail',
      detail: `${reuses}${answersLost > 0 ? ` (${answersLost} IdP refresh answers never committed: each leaves a consumed refresh token in the store)` : ''}`,
    },
    {
      name: 'grants lost',
      ok: grantsLost.length === 0,
      level: 'fail',
      detail: grantsLost.length
        ? `${grantsLost.length}, by what came between their last committed refresh and the IdP's refusal: ${Object.entries(lostAfter).map(([k, v]) => `${k} ${v}`).join(', ')}`
        : '0',
    },
    { name: 'audit chain verified', ok: p.audit.ok === true, level: 'fail', detail: `${p.audit.entries} entries${p.audit.first_bad ? `, first bad seq ${p.audit.first_bad}` : ''}${p.audit.error ? `, ${p.audit.error}` : ''}` },
    {
      name: 'one alert per incident',
      ok: alertRows.every((a) => a.missing === 0 && a.duplicates === 0) && alertsUnknown === 0 && badSignatures === 0,
      level: 'fail',
      detail: `${alertRows.reduce((n, a) => n + a.missing, 0)} missing, ${alertRows.reduce((n, a) => n + a.duplicates, 0)} sent under two ids, ${alertsUnknown} for unknown events, ${badSignatures} bad signatures, ${p.pendingDeliveries} still pending`,
    },
    {
      name: 'one reauth_required alert per grant revoked at the IdP',
      ok: new Set(reauthOnRevoked).size === revokedHere.size && reauthTwice === 0,
      level: 'fail',
      detail: `${reauthOnRevoked.length} alerts for ${revokedHere.size} grants revoked at the IdP`,
    },
    {
      name: 'a revoked agent is refused at once, on every instance',
      ok: lateAgentCalls.length === 0,
      level: 'warn',
      detail: lateAgentCalls.length
        ? `${lateAgentCalls.length} calls succeeded after their agent was revoked, the last ${Math.max(...lateAgentCalls)} ms after`
        : '0 calls succeeded after their agent was revoked',
    },
    {
      name: 'no reauth_required alert for a connection deleted on purpose',
      ok: reauthOnDeleted.length === 0,
      level: 'warn',
      detail: `${reauthOnDeleted.length} (a refresh raced the DELETE after the IdP revoked the grant: two alerts for one deliberate act)`,
    },
    {
      name: `RSS growth warm-up → end ≤ ${o.rssGrowthPct}%`,
      ok: worstRss <= o.rssGrowthPct,
      level: o.rssWarnOnly ? 'warn' : 'fail',
      detail: `worst ${worstRss}%${o.rssWarnOnly ? ' (a warning only in runs under 5 minutes: warm-up noise dominates)' : ''}`,
    },
    {
      name: 'no instance crashed',
      ok: p.crashes.length === 0,
      level: 'fail',
      detail: p.crashes.map((c) => `#${c.instance} at ${rel(c.at)} s (code ${c.code}, signal ${c.signal})`).join(', ') || '0',
    },
    {
      name: 'SIGTERM: every instance exits within its grace',
      ok: p.shutdown.every((s) => !s.killed),
      level: 'fail',
      detail: p.shutdown.map((s) => `#${s.instance} ${s.killed ? 'KILLED after' : 'exited'} ${(s.ms / 1000).toFixed(1)} s code ${s.code}`).join(', '),
    },
    {
      name: 'refreshes at the IdP ≈ refresh-ahead per expiry',
      ok: refreshes.idpOk <= refreshes.expectedAhead * 1.5 + 10,
      level: 'warn',
      detail: `${refreshes.idpOk} ok vs ≈${refreshes.expectedAhead} expected`,
    },
  ];

  return {
    name: p.name,
    durationS: Math.round(p.durationMs / 1000),
    calls: p.records.length,
    succeeded: p.records.length - failed.length,
    loadAverage: p.loadAverage,
    callsPerS: Math.round((p.records.length / p.durationMs) * 10_000) / 10,
    latencyMs: latency(p.records),
    failures: [...byCode.values()].map((r) => ({ ...r, reasons: [...r.reasons] })).sort((a, b) => b.unexpected + b.expected - a.unexpected - a.expected),
    unexpectedSamples: unexpected.slice(0, 20).map((r) => ({
      atS: rel(r.t0),
      tookS: Math.round((r.t1 - r.t0) / 100) / 10,
      instance: r.inst,
      connection: r.conn,
      connectionId: p.connectionIds[r.conn]!,
      agent: r.agent,
      op: r.op,
      status: r.status,
      code: r.code,
    })),
    windows,
    refreshes,
    reuses,
    grantsLost,
    lostAfter,
    audit: p.audit,
    alerts: alertRows,
    alertsUnknown,
    badSignatures,
    rss,
    shutdown: p.shutdown,
    crashes: p.crashes.map((c) => ({ instance: c.instance, atS: rel(c.at), code: c.code, signal: c.signal })),
    checks,
  };
}
