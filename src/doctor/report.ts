import type { Finding } from './types.ts';

const columns = ['verdict', 'check', 'subject', 'detail', 'fix'] as const;

/** Aligned columns, one finding a line, then a one-line summary. Plain text: no colours, no TTY needed. */
export function formatTable(findings: readonly Finding[]): string {
  if (!findings.length) return 'nothing to check: no provider has client credentials configured and no connection is stored\n';
  const rows = [columns.map((c) => c.toUpperCase()), ...findings.map((f) => columns.map((c) => f[c]))];
  const widths = columns.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
  const count = (v: Finding['verdict']) => findings.filter((f) => f.verdict === v).length;
  lines.push('', `${count('error')} error(s), ${count('warn')} warning(s), ${count('ok')} ok`);
  return `${lines.join('\n')}\n`;
}

export function formatJson(findings: readonly Finding[]): string {
  const checks = findings.map(({ check, subject, verdict, detail, fix }) => ({ check, subject, verdict, detail, fix }));
  return `${JSON.stringify({ ok: !findings.some((f) => f.verdict === 'error'), checks }, null, 2)}\n`;
}
