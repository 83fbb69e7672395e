import { Command, InvalidArgumentError, Option } from 'commander';
import { ADMIN_ROLES } from '../admin/index.ts';
import type { AdminKeyView } from '../admin/index.ts';
import { adminApiOf, callAdminApi, runAdminCommand, withAdminApi } from './admin-api.ts';

// `warrant admin-keys create|list|revoke`: scoped admin keys on a running Warrant, through its
// admin API (an admin credential with the role admin).

/** `--expires-in 90d`: seconds from a number with a unit (s, m, h, d). */
function parseDuration(value: string): number {
  const m = /^(\d{1,9})([smhd])$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError('a number with a unit: 3600s, 90m, 12h or 90d');
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

function table(keys: AdminKeyView[]): string {
  const head = ['ID', 'NAME', 'ROLE', 'STATUS', 'EXPIRES', 'LAST USED'];
  const rows = keys.map((k) => [k.id, k.name, k.role, k.status, k.expires_at ?? 'never', k.last_used_at ?? 'never']);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

export function adminKeysCommand(): Command {
  const cmd = new Command('admin-keys').description(
    'Scoped admin keys on a running Warrant: read (GETs, audit), operate (read + revoke, refresh, offboard, rotate) or admin (everything). ' +
      'Each command needs an admin credential with the role admin (the admin token, or an admin key).',
  );

  withAdminApi(
    cmd
      .command('create')
      .description('Mint an admin key and print it once on stdout (only its hash is stored; it is never shown again)')
      .requiredOption('--name <name>', 'what the key is for (a dashboard, a SIEM exporter …)')
      .addOption(new Option('--role <role>', 'what it may do').choices([...ADMIN_ROLES]).makeOptionMandatory())
      .addOption(new Option('--expires-at <date-time>', 'an ISO 8601 date-time with offset after which it is refused').conflicts('expiresIn'))
      .addOption(new Option('--expires-in <duration>', 'or a lifetime: 3600s, 90m, 12h, 90d').argParser(parseDuration)),
  ).action(async (opts: { name: string; role: string; expiresAt?: string; expiresIn?: number; url: string; token?: string; timeout?: number }) => {
    await runAdminCommand(async () => {
      const expires_at = opts.expiresIn !== undefined ? new Date(Date.now() + opts.expiresIn * 1000).toISOString() : opts.expiresAt;
      const key = await callAdminApi<AdminKeyView & { api_key: string }>(adminApiOf(opts), 'POST', '/v1/admin-keys', {
        name: opts.name,
        role: opts.role,
        ...(expires_at ? { expires_at } : {}),
      });
      // The key goes to stdout alone (scripts capture it); the explanation to stderr.
      process.stdout.write(`${key.api_key}\n`);
      process.stderr.write(`Admin key ${key.id} (${key.role}${key.expires_at ? `, expires ${key.expires_at}` : ''}) created; shown once above, store it now.\n`);
    });
  });

  withAdminApi(
    cmd
      .command('list')
      .description('List admin keys (never their secrets)')
      .option('--json', 'print the JSON answer'),
  ).action(async (opts: { json?: boolean; url: string; token?: string; timeout?: number }) => {
    await runAdminCommand(async () => {
      const { admin_keys } = await callAdminApi<{ admin_keys: AdminKeyView[] }>(adminApiOf(opts), 'GET', '/v1/admin-keys');
      process.stdout.write(opts.json ? `${JSON.stringify({ admin_keys }, null, 2)}\n` : table(admin_keys));
    });
  });

  withAdminApi(
    cmd
      .command('revoke')
      .description('Revoke an admin key: refused on every instance within a second')
      .argument('<id>', 'the key id (adk_…)'),
  ).action(async (id: string, opts: { url: string; token?: string; timeout?: number }) => {
    await runAdminCommand(async () => {
      const key = await callAdminApi<AdminKeyView>(adminApiOf(opts), 'DELETE', `/v1/admin-keys/${encodeURIComponent(id)}`);
      process.stdout.write(`${key.id} revoked at ${key.revoked_at}\n`);
    });
  });

  return cmd;
}
