// The soak's report as Markdown tables (pasteable into docs/performance.md).
import type { PassReport } from './report.ts';

const n = (x: number) => x.toLocaleString('en-US');
const row = (cells: (string | number | undefined)[]) => `| ${cells.map((c) => (c === undefined ? '–' : String(c))).join(' | ')} |`;

export function formatSummary(passes: PassReport[]): string {
  const lines = [
    row(['', ...passes.map((p) => p.name)]),
    row(['---', ...passes.map(() => '---:')]),
    row(['duration (s)', ...passes.map((p) => p.durationS)]),
    row(['machine load average (1 min), start → end', ...passes.map((p) => p.loadAverage.map((l) => l.toFixed(1)).join(' → '))]),
    row(['calls', ...passes.map((p) => n(p.calls))]),
    row(['succeeded', ...passes.map((p) => n(p.succeeded))]),
    row(['calls/s; latency of successes p50 / p99 / max (ms)', ...passes.map((p) => `${p.callsPerS}; ${p.latencyMs.p50} / ${p.latencyMs.p99} / ${p.latencyMs.max}`)]),
    row(['failed, expected', ...passes.map((p) => n(p.failures.reduce((s, f) => s + f.expected, 0)))]),
    row(['failed, unexpected', ...passes.map((p) => n(p.failures.reduce((s, f) => s + f.unexpected, 0)))]),
    row(['token expiries in the pass', ...passes.map((p) => n(p.refreshes.expiries))]),
    row(['refreshes expected (ahead of expiry)', ...passes.map((p) => n(p.refreshes.expectedAhead))]),
    row(['refreshes at the IdP, ok / failed', ...passes.map((p) => `${n(p.refreshes.idpOk)} / ${n(p.refreshes.idpFailed)}`)]),
    row(['IdP refresh answers never committed', ...passes.map((p) => p.refreshes.answersLost)]),
    row(['refresh-token reuses seen by the IdP', ...passes.map((p) => p.reuses)]),
    row([
      'grants lost (by what ate the refresh answer)',
      ...passes.map((p) => `${p.grantsLost.length}${p.grantsLost.length ? ` (${Object.entries(p.lostAfter).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}`),
    ]),
    row(['audit chain', ...passes.map((p) => `${p.audit.ok ? 'verified' : 'BROKEN'}, ${n(p.audit.entries)} entries`)]),
    row([
      'alerts delivered / incidents',
      ...passes.map((p) => `${p.alerts.reduce((s, a) => s + a.delivered, 0)} / ${p.alerts.reduce((s, a) => s + a.incidents, 0)}`),
    ]),
    row([
      'RSS MiB warm-up → end, per instance',
      ...passes.map((p) => p.rss.map((r) => `${r.warmMiB ?? '?'}→${r.endMiB ?? '?'}${r.restarted ? '*' : ''}`).join(', ')),
    ]),
    row(['instances crashed', ...passes.map((p) => p.crashes.length)]),
    row(['SIGTERM exit (s)', ...passes.map((p) => p.shutdown.map((s) => `${(s.ms / 1000).toFixed(1)}${s.killed ? ' KILLED' : ''}`).join(', '))]),
  ];
  return lines.join('\n');
}

export function formatPass(p: PassReport): string {
  const out: string[] = [`### ${p.name}`, ''];
  out.push(row(['failed by code', 'expected', 'unexpected', 'explained by']), row(['---', '---:', '---:', '---']));
  for (const f of p.failures) out.push(row([`\`${f.code}\``, f.expected, f.unexpected, f.reasons.join(', ') || '–']));
  if (!p.failures.length) out.push(row(['(none)', 0, 0, '']));
  out.push('', row(['fault', 'at (s)', 'until (s)', 'what', 'calls in window', 'failed in window', 'last fault failure after end (s)']), row(['---', '---:', '---:', '---', '---:', '---', '---:']));
  for (const w of p.windows) {
    const failed = Object.entries(w.failed).map(([c, k]) => `${c} ${k}`).join(', ') || '0';
    out.push(row([w.kind, w.startS, w.endS, w.note, w.calls, failed, w.lastFailureAfterEndS]));
  }
  out.push('', row(['alert type', 'incidents', 'delivered', 'missing', 'under two ids']), row(['---', '---:', '---:', '---:', '---:']));
  for (const a of p.alerts) out.push(row([`\`${a.type}\``, a.incidents, a.delivered, a.missing, a.duplicates]));
  if (p.unexpectedSamples.length) {
    out.push('', 'First unexpected failures (started s into the pass, took s, instance, connection, agent, op, status, code):');
    for (const s of p.unexpectedSamples) {
      out.push(`- ${s.atS} s  ${s.tookS} s  #${s.instance}  conn#${s.connection} ${s.connectionId}  agent#${s.agent}  ${s.op}  ${s.status}  ${s.code}`);
    }
  }
  out.push('', 'Checks:');
  for (const c of p.checks) out.push(`- ${c.ok ? 'ok  ' : c.level === 'warn' ? 'WARN' : 'FAIL'} ${c.name}: ${c.detail}`);
  return out.join('\n');
}
