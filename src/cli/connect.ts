import { Command, Option } from 'commander';
import { AdminApiError, adminApiOf, callAdminApi, runAdminCommand, withAdminApi } from './admin-api.ts';
import { fields, printLines, processIo, when, type CliIo } from './table.ts';
import { tagBody, withTagSettings, type TagFilterOpts } from './tag-options.ts';

// `warrant connect <provider> --owner …`: creates a connect session, prints the link the owner
// opens, then polls the session until it completes, fails or expires (or --wait-timeout passes).

interface Started {
  id: string;
  authorize_url: string;
  connect_url: string;
  expires_at: string;
}

export interface SessionView {
  id: string;
  status: 'pending' | 'completed' | 'failed' | 'expired';
  provider: string;
  owner: string;
  connection_id?: string;
  error?: string;
  expires_at: string;
  reconnect_of?: string;
  confirmation_required?: boolean;
}

type Opts = TagFilterOpts & {
  url: string;
  token?: string;
  timeout?: number;
  owner: string;
  scopes?: string;
  environment?: string;
  purpose?: string;
  wait: boolean;
  waitTimeout?: number;
  pollInterval: number;
  json?: boolean;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (v: string) => {
  const n = Number.parseFloat(v);
  if (!Number.isFinite(n) || n <= 0) throw new AdminApiError(`expected a positive number of seconds, got ${v}`);
  return n;
};

/** Polls the session until it is no longer pending or `deadline` (epoch ms) passes; answers the last view. */
export async function waitForSession(poll: () => Promise<SessionView>, deadline: number, intervalMs: number): Promise<SessionView> {
  for (;;) {
    const s = await poll();
    if (s.status !== 'pending' || Date.now() >= deadline) return s;
    await sleep(Math.max(0, Math.min(intervalMs, deadline - Date.now())));
  }
}

export function connectCommand(io: CliIo = processIo()): Command {
  const cmd = withAdminApi(
    withTagSettings(
      new Command('connect')
        .summary('Connect an owner’s account: print the link, wait until it is completed')
        .argument('<provider>', 'the provider id (warrant providers list)')
        .description(
          'Start a connection: print the link the owner opens in a browser, then wait until they complete it and print the connection id. ' +
            'Exit code 0 once completed; 1 if it failed, expired or the wait timed out.',
        )
        .requiredOption('--owner <owner>', 'who the connection belongs to (usually an e-mail address)')
        .option('--scopes <list>', "comma-separated scopes (default: the provider's default_scopes)")
        .option('--environment <name>', 'the provider environment (default: production)')
        .option('--purpose <text>', 'one sentence shown to the owner on the connect page: why access is asked'),
    ),
  )
    .option('--no-wait', 'print the link and exit without waiting')
    .addOption(new Option('--wait-timeout <seconds>', 'stop waiting after this long (default: until the session expires)').argParser(seconds))
    .addOption(new Option('--poll-interval <seconds>', 'how often to ask').default(1).argParser(seconds).hideHelp())
    .option('--json', 'print the created session, then the final session, as JSON Lines');

  return cmd.action((provider: string, opts: Opts) =>
    runAdminCommand(async () => {
      const api = adminApiOf(opts);
      const scopes = opts.scopes?.split(',').map((s) => s.trim()).filter(Boolean);
      const body = {
        provider,
        owner: opts.owner,
        ...(scopes?.length ? { scopes } : {}),
        ...(opts.environment ? { environment: opts.environment } : {}),
        ...(opts.purpose ? { purpose: opts.purpose } : {}),
        ...tagBody(opts),
      };
      const started = await callAdminApi<Started>(api, 'POST', '/v1/connect-sessions', body);
      if (opts.json) io.stdout(`${JSON.stringify(started)}\n`);
      else {
        printLines(io, [
          `Open this link in a browser to connect ${provider} for ${opts.owner}:`,
          '',
          `  ${started.connect_url}`,
          '',
          ...fields([
            ['session', started.id],
            ['expires', when(started.expires_at)],
          ]),
        ]);
      }
      if (!opts.wait) return;
      const expiry = Date.parse(started.expires_at);
      const deadline = opts.waitTimeout ? Math.min(expiry, Date.now() + opts.waitTimeout * 1000) : expiry;
      if (!opts.json) io.stderr('waiting for the owner to complete it (Ctrl-C stops waiting; the link stays valid until it expires)…\n');
      const poll = () => callAdminApi<SessionView>(api, 'GET', `/v1/connect-sessions/${encodeURIComponent(started.id)}`);
      // One more look just past the expiry, so an expired session says so rather than "still pending".
      let s = await waitForSession(poll, deadline, opts.pollInterval * 1000);
      if (s.status === 'pending' && deadline >= expiry) {
        await sleep(Math.max(0, expiry - Date.now()) + 250);
        s = await poll();
      }
      if (opts.json) io.stdout(`${JSON.stringify(s)}\n`);
      if (s.status === 'completed') {
        if (!opts.json) {
          printLines(io, [`connected: ${s.connection_id}`]);
          if (s.confirmation_required) printLines(io, [`the owner must confirm that ${s.connection_id} replaces ${s.reconnect_of}`]);
        }
        return;
      }
      process.exitCode = 1;
      if (opts.json) return;
      if (s.status === 'failed') io.stderr(`warrant: connect failed: ${s.error ?? 'unknown error'}\n`);
      else if (s.status === 'expired') io.stderr(`warrant: the session expired before the owner completed it\n`);
      else io.stderr(`warrant: still pending after the wait timeout; session ${s.id} stays open until ${s.expires_at}\n`);
    }, io),
  );
}
