import { Command } from 'commander';
import type { ScopeReviewReport } from '../agents/index.ts';
import { adminApiOf, callAdminApi, runAdminCommand, withAdminApi } from './admin-api.ts';

// `warrant review scopes`: granted vs used scopes per agent and grant (GET /v1/review/scopes of a
// running Warrant, through admin-api.ts), with the narrower grant each could do with.

type ApiOpts = { url: string; token?: string; timeout?: number; json?: boolean; since?: string; owner?: string };

const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

/** Columns padded to their widest cell. */
function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

const list = (scopes: string[]) => (scopes.length ? scopes.join(' ') : '-');

/** The review as a table: one line per grant, then what to do about the agents to change. */
export function reviewTable(report: ScopeReviewReport): string[] {
  const lines = [`scopes used between ${report.since} and ${report.until} (proxied calls)`];
  if (!report.agents.length) return [...lines, 'no agents with grants'];
  const rows = [['AGENT', 'OWNER', 'CONNECTION', 'GRANTED', 'USED', 'UNUSED', 'SUGGESTED', 'ACTION']];
  for (const a of report.agents) {
    for (const g of a.grants) {
      rows.push([`${a.id} (${a.name})`, a.owner, g.connection, list(g.granted), list(g.used), list(g.unused), g.action === 'remove' ? '(remove grant)' : list(g.suggested), g.action + (g.note ? ' *' : '')]);
    }
  }
  lines.push(...table(rows));
  if (report.agents.some((a) => a.grants.some((g) => g.note))) lines.push('* token exported to the agent: its use outside the proxy is not seen, no narrowing suggested');
  const narrow = report.agents.filter((a) => a.action === 'narrow');
  const revoke = report.agents.filter((a) => a.action === 'revoke');
  if (narrow.length) {
    lines.push('', 'to narrow in place (the key keeps working for what is kept): PATCH /v1/agents/{id} with');
    for (const a of narrow) lines.push(`  ${a.id}: ${JSON.stringify(a.suggested_patch)}`);
  }
  if (revoke.length) lines.push('', `no grant used in the window, consider revoking (DELETE /v1/agents/{id}): ${revoke.map((a) => a.id).join(', ')}`);
  return lines;
}

export function reviewCommand(): Command {
  const review = new Command('review').description('Access reviews of a running Warrant');

  withAdminApi(
    review
      .command('scopes')
      .description(
        'Per agent and grant: the scopes granted, the scopes its proxied calls used over a window, the unused ones, and the narrower grant suggested ' +
          '(apply it with PATCH /v1/agents/{id}; it keeps the key)',
      ),
  )
    .option('--since <when>', 'start of the window: an ISO 8601 date-time or a duration back from now (30d, 12h, P30D)', '30d')
    .option('--owner <owner>', "only this owner's agents")
    .option('--json', 'print the review as JSON')
    .action((opts: ApiOpts) =>
      runAdminCommand(async () => {
        const api = adminApiOf(opts);
        const agents: ScopeReviewReport['agents'] = [];
        let first: ScopeReviewReport | undefined;
        // Pages of agents; the window is fixed by the first page's answer so every page looks at the same one.
        for (let after: string | undefined; ; ) {
          const q = new URLSearchParams({ limit: '1000', since: first?.since ?? opts.since ?? '30d', ...(opts.owner ? { owner: opts.owner } : {}), ...(after ? { after } : {}) });
          const page = await callAdminApi<ScopeReviewReport>(api, 'GET', `/v1/review/scopes?${q}`);
          first ??= page;
          agents.push(...page.agents);
          if (!page.next_after) break;
          after = page.next_after;
        }
        const report = { ...first!, agents, next_after: undefined };
        if (opts.json) return out(JSON.stringify({ since: report.since, until: report.until, agents }, null, 2));
        for (const line of reviewTable(report)) out(line);
      }),
    );

  return review;
}
