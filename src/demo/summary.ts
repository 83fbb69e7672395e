import type { SandboxStats } from '../sandbox/index.ts';
import type { Alert } from './alerts.ts';
import type { BatchOutcome, CallRecord } from './batch.ts';

// What the run showed, and whether it is what Warrant promises: no call lost to expiry or to the
// IdP's outage; after the revocation, every call a `reauth_required` and exactly one alert.

export interface Window {
  /** Epoch ms the event was sent, and when the sandbox had acted on it. */
  at: number;
  doneAt: number;
  error?: string;
}

export interface DemoFacts {
  batch: BatchOutcome;
  outage?: Window & { seconds: number };
  revocation?: Window;
  stats: SandboxStats;
  /** Refresh requests the sandbox answered, by status (from its log). */
  refreshAnswers: Map<number, number>;
  /** Refresh requests refused by the outage. */
  outageRefusals: number;
  alerts: Alert[];
}

export interface Check {
  ok: boolean;
  text: string;
}

const failuresOf = (records: CallRecord[]) => records.filter((r) => !r.ok);

function tally(values: string[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k} ${n}`).join(', ');
}

function duringOutage(f: DemoFacts): CallRecord[] {
  const o = f.outage;
  if (!o) return [];
  const end = o.at + o.seconds * 1000;
  return f.batch.records.filter((r) => r.startedAt < end && r.endedAt > o.at);
}

export function judge(f: DemoFacts): Check[] {
  const failures = failuresOf(f.batch.records);
  const rev = f.revocation;
  const early = rev ? failures.filter((r) => r.endedAt < rev.at) : failures;
  const wrongCode = failures.filter((r) => r.code !== 'reauth_required');
  const afterRevocation = rev ? f.batch.records.filter((r) => r.startedAt >= rev.doneAt) : [];
  const reauthAlerts = f.alerts.filter((a) => a.type === 'connection.reauth_required');
  const outageCalls = duringOutage(f);
  return [
    { ok: !!f.outage && !f.outage.error && f.outageRefusals > 0, text: `the IdP outage happened: ${f.outageRefusals} refresh(es) refused with 503${f.outage?.error ? ` (${f.outage.error})` : ''}` },
    { ok: outageCalls.length > 0 && outageCalls.every((r) => r.ok), text: `every call during the outage succeeded (${outageCalls.filter((r) => r.ok).length}/${outageCalls.length})` },
    { ok: !!rev && !rev.error, text: `the grant was revoked at the IdP${rev?.error ? ` (${rev.error})` : ''}` },
    { ok: early.length === 0, text: `no call failed before the revocation (${early.length})` },
    { ok: wrongCode.length === 0, text: `every failure is reauth_required (${failures.length - wrongCode.length}/${failures.length})` },
    {
      ok: afterRevocation.length > 0 && afterRevocation.every((r) => r.code === 'reauth_required'),
      text: `every call after the revocation is reauth_required (${afterRevocation.filter((r) => r.code === 'reauth_required').length}/${afterRevocation.length})`,
    },
    { ok: reauthAlerts.length === 1 && reauthAlerts.every((a) => a.signatureValid), text: `one signed connection.reauth_required alert (${reauthAlerts.length})` },
  ];
}

/** The summary table: one `name  value` row each, stable enough for a script to read. */
export function formatSummary(f: DemoFacts): string {
  const records = f.batch.records;
  const failures = failuresOf(records);
  const rev = f.revocation;
  const retries = records.reduce((n, r) => n + r.retries, 0);
  const waited = records.filter((r) => r.waitedOn.length > 0);
  const outageCalls = duringOutage(f);
  const reauthAlerts = f.alerts.filter((a) => a.type === 'connection.reauth_required');
  const others = f.alerts.filter((a) => a.type !== 'connection.reauth_required').map((a) => a.type);
  const answers = [...f.refreshAnswers].sort(([a], [b]) => a - b).map(([status, n]) => `${status} ×${n}`).join(', ');
  const firstFailure = failures[0];
  const rows: [string, string][] = [
    ['calls', String(records.length)],
    ['ok', String(records.length - failures.length)],
    ['failed', String(failures.length)],
    ['failures by code', failures.length ? tally(failures.map((r) => r.code ?? 'unknown')) : 'none'],
    ['failures before the revocation', String(rev ? failures.filter((r) => r.endedAt < rev.at).length : failures.length)],
    [
      'first failure',
      firstFailure ? `call #${firstFailure.index + 1}, ${rev ? `${((firstFailure.endedAt - rev.at) / 1000).toFixed(2)} s after the revocation` : 'no revocation'}` : 'none',
    ],
    ['retries', `${retries} (${waited.length} call(s) waited: ${waited.length ? tally(waited.flatMap((r) => r.waitedOn)) : 'none'})`],
    ['calls during the IdP outage', `${outageCalls.length}, ${outageCalls.filter((r) => r.ok).length} ok`],
    ['refreshes', `${f.stats.refreshRequests} at the IdP (${answers || 'none'})`],
    ['alerts', `${reauthAlerts.length} connection.reauth_required`],
    ['other events', others.length ? tally(others) : 'none'],
    ['duration of the batch', `${((f.batch.endedAt - f.batch.startedAt) / 1000).toFixed(1)} s`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n');
}

/** Refresh answers by status, from the sandbox's log lines (`token grant_type=refresh_token … -> 503 …`). */
export function refreshAnswersOf(log: string[]): { byStatus: Map<number, number>; outage: number } {
  const byStatus = new Map<number, number>();
  let outage = 0;
  for (const line of log) {
    const m = /token grant_type=refresh_token .*-> (\d{3})/.exec(line);
    if (!m) continue;
    const status = Number(m[1]);
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    if (line.includes('(outage')) outage += 1;
  }
  return { byStatus, outage };
}
