import { Command, Option } from 'commander';
import type { z } from 'zod';
import type { agentView } from '../http/routes/agents.ts';
import { AdminApiError, adminApiOf, callAdminApi, runAdminCommand, withAdminApi } from './admin-api.ts';
import { fields, paint, printJson, printLines, processIo, relative, statusColour, table, tagsCell, when, type CliIo } from './table.ts';
import { tagBody, tagQuery, withTagFilters, withTagSettings, type TagFilterOpts } from './tag-options.ts';

// `warrant agents create | list | show | revoke` through the admin API of a running Warrant.

type ApiOpts = { url: string; token?: string; timeout?: number; json?: boolean };
type Tags = { end_user?: string | null; organization?: string | null; labels?: Record<string, string> };
export type AgentView = z.infer<typeof agentView> & Tags & { orphan_reasons?: string[] };
type Grant = AgentView['grants'][number];

const path = (id: string) => `/v1/agents/${encodeURIComponent(id)}`;
const collect = (v: string, all: string[] = []) => [...all, v];

/**
 * `<connection>:<scope>[,<scope>…][:export]`: the connection id is everything before the first `:`
 * (scopes may hold colons, `items:read`); a trailing `:export` allows token export.
 */
export function parseGrant(spec: string): { connection: string; scopes: string[]; token_export?: boolean } {
  const at = spec.indexOf(':');
  if (at <= 0) throw new AdminApiError(`--grant ${spec}: expected <connection>:<scope>[,<scope>…][:export]`);
  let rest = spec.slice(at + 1);
  const exported = rest.endsWith(':export');
  if (exported) rest = rest.slice(0, -':export'.length);
  const scopes = rest.split(',').map((s) => s.trim()).filter(Boolean);
  if (!scopes.length) throw new AdminApiError(`--grant ${spec}: name at least one scope`);
  return { connection: spec.slice(0, at), scopes, ...(exported ? { token_export: true } : {}) };
}

const grantCell = (g: Grant) => `${g.connection}:${g.scopes.join(',')}${g.token_export ? ':export' : ''}`;

function agentLines(a: AgentView, io: Pick<CliIo, 'color'>): string[] {
  const now = Date.now();
  const lines = fields([
    ['agent', a.id],
    ['name', a.name],
    ['owner', a.owner],
    ['status', paint(io, statusColour(a.status), a.status)],
    ['suspended', a.suspended_at ? `${when(a.suspended_at, now)}: ${(a.suspended_reasons ?? []).join(', ')}` : undefined],
    ['orphaned', a.orphan_reasons?.length ? paint(io, 'red', a.orphan_reasons.join(', ')) : undefined],
    ['key id', a.key_id],
    ['expires', a.expires_at ? when(a.expires_at, now) : 'never'],
    ['last used', a.last_used_at ? when(a.last_used_at, now) : 'never'],
    ['revoked', a.revoked_at ?? undefined],
    ['tags', tagsCell(a) || undefined],
    ['created', a.created_at],
    ['grants', a.grants.length ? undefined : 'none'],
  ]);
  if (a.grants.length) lines.push('grants:', ...a.grants.map((g) => `  ${grantCell(g)}`));
  return lines;
}

export function agentsCommand(io: CliIo = processIo()): Command {
  const agents = new Command('agents').description('Agent identities, each with its own key and narrow grants on connections');
  const run = (body: () => Promise<void>) => runAdminCommand(body, io);

  withTagSettings(
    withAdminApi(
      agents
        .command('create')
        .description('Create an agent (role admin); its API key is printed once and never shown again'),
    ),
    'agent',
  )
    .requiredOption('--name <name>', 'a name people recognise (e.g. nightly-invoices)')
    .requiredOption('--owner <owner>', 'the person accountable for it (usually an e-mail address)')
    .addOption(
      new Option('--grant <connection:scopes[:export]>', 'a grant: <connection>:<scope>[,<scope>…], with :export to allow token export; repeatable')
        .argParser(collect)
        .makeOptionMandatory(),
    )
    .option('--expires-at <time>', 'when the agent stops working (RFC 3339)')
    .option('--json', 'print the API’s JSON (the key included)')
    .action((opts: ApiOpts & TagFilterOpts & { name: string; owner: string; grant: string[]; expiresAt?: string }) =>
      run(async () => {
        const body = { name: opts.name, owner: opts.owner, grants: opts.grant.map(parseGrant), ...(opts.expiresAt ? { expires_at: opts.expiresAt } : {}), ...tagBody(opts) };
        const a = await callAdminApi<AgentView & { api_key: string }>(adminApiOf(opts), 'POST', '/v1/agents', body);
        if (opts.json) return printJson(io, a);
        printLines(io, [...agentLines(a, io), '', `api key: ${a.api_key}`, 'Store it now: it will not be shown again (Warrant keeps only its hash).']);
      }),
    );

  withTagFilters(withAdminApi(agents.command('list').description('List agents (at most 1000), oldest first; --orphaned for those that lost their reason to exist')))
    .option('--owner <owner>', 'only this owner’s')
    .addOption(new Option('--status <status>', 'only in this status').choices(['active', 'expired', 'suspended', 'revoked']))
    .option('--orphaned', 'only orphans (owner offboarded or unknown, no usable connection, expired, idle), with why')
    .option('--json', 'print the API’s JSON')
    .action((opts: ApiOpts & TagFilterOpts & { owner?: string; status?: string; orphaned?: boolean }) =>
      run(async () => {
        const q = new URLSearchParams([
          ...(opts.orphaned ? [['orphaned', 'true']] : []),
          ...(opts.owner ? [['owner', opts.owner]] : []),
          ...(opts.status ? [['status', opts.status]] : []),
          ...tagQuery(opts),
        ]);
        const res = await callAdminApi<{ agents: AgentView[] }>(adminApiOf(opts), 'GET', `/v1/agents${q.size ? `?${q}` : ''}`);
        if (opts.json) return printJson(io, res);
        if (!res.agents.length) return printLines(io, [opts.orphaned ? 'no orphaned agents' : 'no agents']);
        const now = Date.now();
        const tagged = res.agents.some((a) => tagsCell(a));
        const orphans = res.agents.some((a) => a.orphan_reasons?.length);
        printLines(
          io,
          table(
            [
              { header: 'ID', keep: true },
              'NAME',
              'OWNER',
              { header: 'STATUS', colour: statusColour },
              'LAST USED',
              'GRANTS',
              ...(orphans ? [{ header: 'ORPHANED', colour: () => 'red' as const }] : []),
              ...(tagged ? ['TAGS'] : []),
            ],
            res.agents.map((a) => [
              a.id,
              a.name,
              a.owner,
              a.status,
              a.last_used_at ? relative(a.last_used_at, now) : 'never',
              a.grants.map(grantCell).join(' '),
              ...(orphans ? [(a.orphan_reasons ?? []).join(',')] : []),
              ...(tagged ? [tagsCell(a)] : []),
            ]),
            io,
          ),
        );
      }),
    );

  withAdminApi(agents.command('show').argument('<id>', 'the agent id').description('Show an agent: owner, status, grants, last use, tags'))
    .option('--json', 'print the API’s JSON')
    .action((id: string, opts: ApiOpts) =>
      run(async () => {
        const a = await callAdminApi<AgentView>(adminApiOf(opts), 'GET', path(id));
        if (opts.json) return printJson(io, a);
        printLines(io, agentLines(a, io));
      }),
    );

  withAdminApi(agents.command('revoke').argument('<id>', 'the agent id').description('Revoke an agent (role operate): its key stops working on every instance within a second. Idempotent.'))
    .option('--json', 'print the API’s JSON')
    .action((id: string, opts: ApiOpts) =>
      run(async () => {
        const a = await callAdminApi<AgentView>(adminApiOf(opts), 'DELETE', path(id));
        if (opts.json) return printJson(io, a);
        printLines(io, [`revoked: ${a.id} (${a.name}, ${a.owner}) at ${a.revoked_at}`]);
      }),
    );

  return agents;
}
