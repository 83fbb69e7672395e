import { Command, Option } from 'commander';
import type { OffboardReport, OwnerView } from '../agents/index.ts';
import { adminApiOf, callAdminApi, runAdminCommand, withAdminApi } from './admin-api.ts';

// `warrant owners list | show <owner> | offboard <owner>`: through the admin API of a running
// Warrant (admin-api.ts), which revokes at the IdPs and drops keys on every instance.

type ApiOpts = { url: string; token?: string; timeout?: number; json?: boolean };

const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};
const path = (owner: string) => `/v1/owners/${encodeURIComponent(owner)}`;

/** Columns padded to their widest cell. */
function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

function printReport(report: OffboardReport): void {
  out(`owner ${report.owner}: offboarded at ${report.offboarded_at}`);
  out(`agents revoked: ${report.agents.filter((a) => a.revoked).length} of ${report.agents.length}${report.oauth_clients.length ? ` (${report.oauth_clients.length} OAuth client(s))` : ''}`);
  if (!report.connections.length) {
    out('connections: none');
    return;
  }
  out('connections:');
  const rows = [['VERIFIED', 'CONNECTION', 'PROVIDER', 'REVOKED', 'VERIFICATION', 'DETAIL']];
  for (const c of report.connections) rows.push([c.verified ? 'yes' : 'NO', c.id, c.provider, c.revoked ? 'yes' : 'no', c.verification, c.detail]);
  for (const line of table(rows)) out(`  ${line}`);
  const unverified = report.connections.filter((c) => !c.verified).length;
  if (unverified) out(`${unverified} grant(s) not verified dead: revoke them in the provider's console (an alert was sent)`);
}

export function ownersCommand(): Command {
  const owners = new Command('owners').description("The people agents and connections belong to; offboarding revokes all of an owner's access");

  withAdminApi(owners.command('list').description('List owners with their counts of agents (not revoked) and connections'))
    .addOption(new Option('--status <status>', 'only owners in this status').choices(['active', 'offboarded']))
    .option('--json', 'print the owners as JSON')
    .action((opts: ApiOpts & { status?: string }) =>
      runAdminCommand(async () => {
        const api = adminApiOf(opts);
        const all: OwnerView[] = [];
        for (let after: string | undefined; ; ) {
          const q = new URLSearchParams({ limit: '1000', ...(opts.status ? { status: opts.status } : {}), ...(after ? { after } : {}) });
          const page = await callAdminApi<{ owners: OwnerView[]; next_after?: string }>(api, 'GET', `/v1/owners?${q}`);
          all.push(...page.owners);
          if (!page.next_after) break;
          after = page.next_after;
        }
        if (opts.json) return out(JSON.stringify({ owners: all }, null, 2));
        if (!all.length) return out('no owners');
        for (const line of table([['OWNER', 'STATUS', 'AGENTS', 'CONNECTIONS'], ...all.map((o) => [o.id, o.status, String(o.agents), String(o.connections)])])) out(line);
      }),
    );

  withAdminApi(owners.command('show').argument('<owner>', 'the owner id (usually an e-mail address)').description("Show an owner; once offboarded, the offboarding's outcome per grant"))
    .option('--json', 'print the owner as JSON')
    .action((owner: string, opts: ApiOpts) =>
      runAdminCommand(async () => {
        const o = await callAdminApi<OwnerView & { offboarding?: OffboardReport }>(adminApiOf(opts), 'GET', path(owner));
        if (opts.json) return out(JSON.stringify(o, null, 2));
        out(`owner ${o.id}: ${o.status}`);
        out(`agents (not revoked): ${o.agents}, connections: ${o.connections}`);
        if (o.offboarding) printReport(o.offboarding);
      }),
    );

  withAdminApi(
    owners
      .command('offboard')
      .argument('<owner>', 'the owner id (usually an e-mail address)')
      .description(
        "Offboard an owner: revoke every agent (keys stop on every instance within a second) and every upstream grant at its IdP, " +
          'verifying each is dead. Idempotent. Exit code 1 when a grant could not be verified dead.',
      ),
  )
    .option('--json', 'print the report as JSON')
    .action((owner: string, opts: ApiOpts) =>
      runAdminCommand(async () => {
        const report = await callAdminApi<OffboardReport>(adminApiOf(opts), 'POST', `${path(owner)}/offboard`);
        if (opts.json) out(JSON.stringify(report, null, 2));
        else printReport(report);
        if (report.connections.some((c) => !c.verified)) process.exitCode = 1;
      }),
    );

  return owners;
}
