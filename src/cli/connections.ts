import { Command, Option } from 'commander';
import type { z } from 'zod';
import type { connectionView } from '../http/routes/connections.ts';
import { adminApiOf, callAdminApi, runAdminCommand, withAdminApi } from './admin-api.ts';
import { fields, paint, printJson, printLines, processIo, relative, statusColour, table, tagsCell, when, type CliIo } from './table.ts';
import { tagQuery, withTagFilters, type TagFilterOpts } from './tag-options.ts';

// `warrant connections list | show | refresh | revoke` through the admin API of a running Warrant.

type ApiOpts = { url: string; token?: string; timeout?: number; json?: boolean };
export type ConnectionView = z.infer<typeof connectionView> & { end_user?: string | null; organization?: string | null; labels?: Record<string, string> };
interface RevocationReport {
  id: string;
  revoked: boolean;
  verified: boolean;
  verification: string;
  detail: string;
  deleted: boolean;
}

const STATUSES = ['active', 'reauth_required', 'revoked', 'error'];
const path = (id: string) => `/v1/connections/${encodeURIComponent(id)}`;

export function connectionLines(c: ConnectionView, io: Pick<CliIo, 'color'>, now = Date.now()): string[] {
  const tags = tagsCell(c);
  return fields([
    ['connection', c.id],
    ['provider', `${c.provider} (${c.environment})`],
    ['owner', c.owner],
    ['status', paint(io, statusColour(c.status), c.status)],
    ['account', c.account],
    ['scopes', c.scopes.join(' ') || '-'],
    ['missing scopes', c.missing_scopes.length ? c.missing_scopes.join(' ') : undefined],
    ['expires', when(c.expires_at, now)],
    ['last refresh', when(c.last_refreshed_at, now)],
    ['last error', c.last_error],
    ['tags', tags || undefined],
    ['created', c.created_at],
  ]);
}

export function connectionsCommand(io: CliIo = processIo()): Command {
  const connections = new Command('connections').description('The OAuth grants Warrant holds: list, inspect, refresh, revoke');
  const run = (body: () => Promise<void>) => runAdminCommand(body, io);

  withTagFilters(withAdminApi(connections.command('list').description('List connections (at most 1000), oldest first')))
    .option('--owner <owner>', 'only this owner’s')
    .addOption(new Option('--status <status>', 'only in this status').choices(STATUSES))
    .option('--provider <provider>', 'only of this provider')
    .option('--json', 'print the API’s JSON')
    .action((opts: ApiOpts & TagFilterOpts & { owner?: string; status?: string; provider?: string }) =>
      run(async () => {
        const q = new URLSearchParams([
          ...(opts.owner ? [['owner', opts.owner]] : []),
          ...(opts.status ? [['status', opts.status]] : []),
          ...(opts.provider ? [['provider', opts.provider]] : []),
          ...tagQuery(opts),
        ]);
        const res = await callAdminApi<{ connections: ConnectionView[] }>(adminApiOf(opts), 'GET', `/v1/connections${q.size ? `?${q}` : ''}`);
        if (opts.json) return printJson(io, res);
        if (!res.connections.length) return printLines(io, ['no connections']);
        const now = Date.now();
        const tagged = res.connections.some((c) => tagsCell(c));
        printLines(
          io,
          table(
            [{ header: 'ID', keep: true }, 'PROVIDER', 'OWNER', { header: 'STATUS', colour: statusColour }, 'EXPIRES', 'LAST REFRESH', ...(tagged ? ['TAGS'] : [])],
            res.connections.map((c) => [c.id, c.provider, c.owner, c.status, relative(c.expires_at, now), relative(c.last_refreshed_at, now), ...(tagged ? [tagsCell(c)] : [])]),
            io,
          ),
        );
      }),
    );

  withAdminApi(connections.command('show').argument('<id>', 'the connection id').description('Show a connection: status, scopes, expiry, last refresh and error, tags'))
    .option('--json', 'print the API’s JSON')
    .action((id: string, opts: ApiOpts) =>
      run(async () => {
        const c = await callAdminApi<ConnectionView>(adminApiOf(opts), 'GET', path(id));
        if (opts.json) return printJson(io, c);
        printLines(io, connectionLines(c, io));
      }),
    );

  withAdminApi(connections.command('refresh').argument('<id>', 'the connection id').description('Refresh the access token at the IdP now (role operate)'))
    .option('--json', 'print the API’s JSON')
    .action((id: string, opts: ApiOpts) =>
      run(async () => {
        const r = await callAdminApi<{ id: string; expires_at: string | null; refreshed: boolean }>(adminApiOf(opts), 'POST', `${path(id)}/refresh`);
        if (opts.json) return printJson(io, r);
        printLines(io, [`${r.refreshed ? 'refreshed' : 'not refreshed (another refresh had just completed)'}: ${r.id}, token valid until ${when(r.expires_at)}`]);
      }),
    );

  withAdminApi(
    connections
      .command('revoke')
      .argument('<id>', 'the connection id')
      .description(
        'Revoke the grant at its IdP, verify it is dead (introspection or a refused refresh), then delete the connection (role operate). ' +
          'Exit code 1 when the revocation could not be verified: revoke it in the provider’s console.',
      ),
  )
    .option('--json', 'print the API’s JSON')
    .action((id: string, opts: ApiOpts) =>
      run(async () => {
        const r = await callAdminApi<RevocationReport>(adminApiOf(opts), 'DELETE', path(id));
        if (opts.json) printJson(io, r);
        else {
          printLines(io, [
            ...fields([
              ['connection', r.id],
              ['revoked at IdP', r.revoked ? 'yes' : 'no'],
              ['verified', r.verified ? `yes (${r.verification})` : `NO (${r.verification})`],
              ['detail', r.detail],
              ['deleted', r.deleted ? 'yes' : 'no'],
            ]),
            ...(r.verified ? [] : ['the grant may still be live: revoke it in the provider’s console']),
          ]);
        }
        if (!r.verified) process.exitCode = 1;
      }),
    );

  return connections;
}
