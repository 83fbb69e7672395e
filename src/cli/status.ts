import { Command, Option } from 'commander';
import type { StatusReport } from '../admin/index.ts';
import { adminApiOf, callAdminApi, runAdminCommand, withAdminApi } from './admin-api.ts';
import { paint, printJson, printLines, processIo, relative, statusColour, table, type CliIo } from './table.ts';

// `warrant status`: GET /v1/status of a running Warrant, the overview an operator looks at first.

const counts = (r: Record<string, number>, io: CliIo) =>
  Object.entries(r)
    .map(([k, n]) => `${paint(io, n > 0 ? statusColour(k) : undefined, k)} ${n}`)
    .join(', ');

export function statusLines(s: StatusReport, io: CliIo, now = Date.now()): string[] {
  const a = s.audit;
  const chain =
    a.chain === 'ok'
      ? `${paint(io, 'green', 'ok')} (${a.entries} entries, verified ${relative(a.verified_at, now)})`
      : a.chain === 'broken'
        ? `${paint(io, 'red', 'BROKEN')} at seq ${a.first_bad}${a.reason ? `: ${a.reason}` : ''} (run: warrant audit verify)`
        : `${paint(io, 'yellow', 'verifying')} (${a.head_seq} entries; ask again in a moment)`;
  const lines = [
    `connections: ${s.connections.total} (${counts(s.connections.by_status, io)})`,
    `agents:      ${s.agents.total} (${counts(s.agents.by_status, io)}); orphans: ${s.agents.orphans ? paint(io, 'red', `${s.agents.orphans}${s.agents.orphans_capped ? '+' : ''}`) : 0}`,
    `audit chain: ${chain}`,
    '',
  ];
  if (s.upcoming_expiries.length) {
    lines.push('upcoming expiries (next refreshes due):');
    lines.push(
      ...table(
        [{ header: 'CONNECTION', keep: true }, 'PROVIDER', 'OWNER', 'EXPIRES', 'REFRESH DUE'],
        s.upcoming_expiries.map((c) => [c.id, c.provider, c.owner, relative(c.expires_at, now), relative(c.refresh_due_at, now)]),
        io,
      ).map((l) => `  ${l}`),
      '',
    );
  } else lines.push('upcoming expiries: none', '');
  if (s.failing.length) {
    lines.push('failing connections:');
    lines.push(
      ...table(
        [{ header: 'CONNECTION', keep: true }, 'PROVIDER', 'OWNER', { header: 'STATUS', colour: statusColour }, 'SINCE', 'LAST ERROR'],
        s.failing.map((c) => [c.id, c.provider, c.owner, c.status, relative(c.since, now), c.last_error ?? '-']),
        io,
      ).map((l) => `  ${l}`),
    );
  } else lines.push('failing connections: none');
  return lines;
}

export function statusCommand(io: CliIo = processIo()): Command {
  return withAdminApi(
    new Command('status').description(
      'Overview of a running Warrant: connections and agents by status, orphans, the audit chain, the next expiries and the failing connections',
    ),
  )
    .addOption(new Option('--limit <n>', 'rows of upcoming expiries and of failing connections (1 to 100)').default('10'))
    .option('--json', 'print the API’s JSON')
    .action((opts: { url: string; token?: string; timeout?: number; limit: string; json?: boolean }) =>
      runAdminCommand(async () => {
        const s = await callAdminApi<StatusReport>(adminApiOf(opts), 'GET', `/v1/status?${new URLSearchParams({ limit: opts.limit })}`);
        if (opts.json) return printJson(io, s);
        printLines(io, statusLines(s, io));
      }, io),
    );
}
