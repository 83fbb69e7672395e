import { Command, Option } from 'commander';
import type { RotationItem as Item, RotationStatus as Status, RunReport } from '../tokens/rotation-schedules.ts';
import { adminApiOf, callAdminApi, runAdminCommand, withAdminApi, type AdminApiOptions } from './admin-api.ts';

// `warrant rotate`: the rotation schedules of a running Warrant (docs/governance.md, "Rotation
// schedules"), through its admin API: the server refreshes, generates keys and audits.

const what = (o: { kind: string; connection?: string; provider: string; environment: string }) =>
  `${o.kind.padEnd(13)} ${o.connection ?? `${o.provider}/${o.environment}`}${o.connection ? ` (${o.provider})` : ''}`;

function printKey(s: Status): void {
  if (!s.pending_key) return;
  process.stdout.write(
    `\nNew public key for ${s.connection} (${s.provider}), thumbprint ${s.pending_key.thumbprint}.\n` +
      'Upload it to the IdP; Warrant keeps using the old key until the new one obtains a token.\n\n' +
      `${s.pending_key.public_key_pem.trimEnd()}\n\nJWK:\n${JSON.stringify(s.pending_key.public_key_jwk)}\n`,
  );
}

async function run(api: AdminApiOptions, opts: { dryRun?: boolean; connection?: string; json?: boolean }): Promise<void> {
  const query = new URLSearchParams({ due: 'true' });
  if (opts.dryRun) query.set('dry_run', 'true');
  if (opts.connection) query.set('connection', opts.connection);
  const report = await callAdminApi<RunReport>(api, 'POST', `/v1/rotations/run?${query}`);
  const keys: Status[] = [];
  for (const r of report.results) {
    if (r.kind === 'private_key' && r.outcome === 'pending' && r.connection) keys.push(await callAdminApi<Status>(api, 'GET', `/v1/rotations/${encodeURIComponent(r.connection)}`));
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ ...report, pending_keys: keys.map((k) => ({ connection: k.connection, ...k.pending_key })) }, null, 2)}\n`);
  } else {
    if (!report.results.length) process.stdout.write(report.dry_run ? 'nothing is due\n' : 'nothing was due\n');
    for (const r of report.results) {
      const proof = r.verification ? ` [${r.verified ? 'verified' : 'unverified'}: ${r.verification}]` : '';
      process.stdout.write(`${r.outcome.padEnd(10)} ${what(r)}${proof}: ${r.detail}\n`);
    }
    if (report.notices_sent) process.stdout.write(`${report.notices_sent} credential.expiring notice(s) sent to owners\n`);
    keys.forEach(printKey);
  }
  if (report.results.some((r) => r.outcome === 'failed')) process.exitCode = 1;
}

async function list(api: AdminApiOptions, opts: { due?: boolean; json?: boolean }): Promise<void> {
  const { rotations } = await callAdminApi<{ rotations: Item[] }>(api, 'GET', `/v1/rotations${opts.due ? '?due=true' : ''}`);
  if (opts.json) return void process.stdout.write(`${JSON.stringify(rotations, null, 2)}\n`);
  if (!rotations.length) process.stdout.write(opts.due ? 'nothing is due\n' : 'no credential is under a rotation schedule\n');
  for (const r of rotations) {
    process.stdout.write(`${r.state.padEnd(12)} ${what(r)} issued ${r.issued_at ?? '?'} due ${r.due_at ?? '?'}${r.action !== 'none' ? ` → ${r.action}` : ''}${r.last_error ? ` (${r.last_error})` : ''}\n`);
  }
}

async function publicKey(api: AdminApiOptions, connection: string, opts: { json?: boolean; format?: string }): Promise<void> {
  const s = await callAdminApi<Status>(api, 'GET', `/v1/rotations/${encodeURIComponent(connection)}`);
  if (!s.pending_key) {
    process.stderr.write(`warrant: connection ${connection} has no key rotation under way (state ${s.state})\n`);
    process.exitCode = 1;
    return;
  }
  if (opts.json) process.stdout.write(`${JSON.stringify({ connection, ...s.pending_key }, null, 2)}\n`);
  else if (opts.format === 'jwk') process.stdout.write(`${JSON.stringify(s.pending_key.public_key_jwk)}\n`);
  else if (opts.format === 'pem') process.stdout.write(s.pending_key.public_key_pem);
  else printKey(s);
}

export function rotateCommand(): Command {
  return withAdminApi(
    new Command('rotate')
      .description(
        'Rotation schedules: rotate what is due (refresh tokens by a forced refresh, JWT-bearer keys by a new key pair), ' +
          'list credentials by age, show a new public key for upload',
      )
      .option('--due', 'rotate every credential that is due (what the scheduler also does every few minutes)')
      .option('--connection <id>', "rotate this connection's credential now, whatever its age")
      .option('--dry-run', 'say what would be done, do nothing')
      .option('--list', 'list the credentials under a schedule (with --due: only those due)')
      .option('--public-key <connection>', 'print the pending public key of a JWT-bearer key rotation (PEM and JWK)')
      .addOption(new Option('--format <format>', 'with --public-key: only this form').choices(['pem', 'jwk']))
      .option('--json', 'machine-readable output'),
  ).action(async (opts: { due?: boolean; connection?: string; dryRun?: boolean; list?: boolean; publicKey?: string; format?: string; json?: boolean; url: string; token?: string; timeout?: number }) => {
    await runAdminCommand(async () => {
      const api = adminApiOf(opts);
      if (opts.publicKey) return publicKey(api, opts.publicKey, opts);
      if (opts.list) return list(api, opts);
      if (opts.due || opts.connection) return run(api, opts);
      process.stderr.write('warrant rotate: say --due, --connection <id>, --list or --public-key <connection>\n');
      process.exitCode = 2;
    });
  });
}
