import { Command, Option } from 'commander';

// `warrant sandbox revoke|outage|expire-tokens|status`: the sandbox's controls for people, sent
// to a running `warrant sandbox` over its /_sandbox endpoints (docs/sandbox.md, "Controls").

const defaultSandboxUrl = 'http://127.0.0.1:7171';

interface ControlOptions {
  sandboxUrl: string;
  json?: boolean;
}

function withControlOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--sandbox-url <url>', 'the running sandbox').env('WARRANT_SANDBOX_URL').default(defaultSandboxUrl))
    .option('--json', 'print the JSON answer');
}

/** Loaded on use: `warrant serve` (which builds this command too) loads nothing of src/sandbox;
 *  and straight from the file, not the sandbox's index, so the IdP is not loaded either. */
async function callSandboxControl<T>(sandboxUrl: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const client = await import('../sandbox/control-client.ts');
  return client.callSandboxControl<T>(sandboxUrl, method, path, body);
}

const print = (line: string): void => void process.stdout.write(`${line}\n`);
const printJson = (v: unknown) => print(JSON.stringify(v, null, 2));
const clock = (iso: string) => new Date(iso).toLocaleTimeString();

function revokeCommand(): Command {
  return withControlOptions(
    new Command('revoke')
      .description(
        'Revoke every grant of one sandbox user (--user) or of everyone (--all), as a password reset or an IdP admin would: ' +
          'their access tokens die at once and the next refresh answers invalid_grant.',
      )
      .option('--user <account>', 'the sandbox user whose grants die (the default user is sandbox-user)')
      .option('--all', "every user's grants, and every client-credentials token"),
  ).action(async (opts: ControlOptions & { user?: string; all?: boolean }) => {
    if ((opts.user === undefined) === !opts.all) throw new Error('revoke: give either --user <account> or --all');
    if (opts.user !== undefined && !/^[a-z0-9-]{1,32}$/.test(opts.user)) throw new Error('--user: a sandbox user id (lower-case letters, digits and "-", at most 32)');
    const out = await callSandboxControl<{ revoked: number; clientCredentials: number }>(opts.sandboxUrl, 'POST', '/revoke', opts.all ? { all: true } : { user: opts.user });
    if (opts.json) return printJson(out);
    const whose = opts.all ? 'every user' : opts.user;
    print(`Revoked ${out.revoked} grant(s) of ${whose}${opts.all ? ` and ${out.clientCredentials} client-credentials token(s)` : ''}: the API refuses their tokens, a refresh answers invalid_grant.`);
  });
}

function outageCommand(): Command {
  return withControlOptions(
    new Command('outage')
      .description('Make the token endpoint answer 503 (Retry-After) for N seconds, then heal by itself; --seconds 0 ends an outage now.')
      .requiredOption('--seconds <n>', 'how long, 0 to 3600')
      .option('--api', 'take the API down too (every /api request answers 503)'),
  ).action(async (opts: ControlOptions & { seconds: string; api?: boolean }) => {
    const seconds = /^\d+$/.test(opts.seconds) ? Number(opts.seconds) : NaN;
    if (!(seconds >= 0 && seconds <= 3600)) throw new Error('--seconds: a whole number of seconds from 0 to 3600');
    const out = await callSandboxControl<{ tokenEndpointUntil: string | null; apiUntil: string | null }>(opts.sandboxUrl, 'POST', '/outage', {
      seconds,
      ...(opts.api ? { api: true } : {}),
    });
    if (opts.json) return printJson(out);
    if (!out.tokenEndpointUntil && !out.apiUntil) return print('No outage: the token endpoint and the API answer normally.');
    if (out.tokenEndpointUntil) print(`The token endpoint answers 503 until ${clock(out.tokenEndpointUntil)} (${seconds} s), then heals by itself.`);
    if (out.apiUntil) print(`The API answers 503 until ${clock(out.apiUntil)}.`);
  });
}

function expireTokensCommand(): Command {
  return withControlOptions(
    new Command('expire-tokens').description('Expire every access token issued so far, now: the API answers 401 to them; refresh tokens keep working.'),
  ).action(async (opts: ControlOptions) => {
    const out = await callSandboxControl<{ expired: number }>(opts.sandboxUrl, 'POST', '/expire-tokens');
    if (opts.json) return printJson(out);
    print(`Expired ${out.expired} access token(s): the API answers 401 to them; a refresh gets a new one.`);
  });
}

interface StatusAnswer {
  accessTokenTtl: number;
  outage: { tokenEndpointUntil: string | null; apiUntil: string | null };
  faults: Record<string, unknown>;
  live: { grants: number; accessTokens: number; refreshTokens: number };
  stats: Record<string, unknown>;
}

function statusCommand(): Command {
  return withControlOptions(new Command('status').description("The sandbox's counters, current faults and outage, token lifetime, live grants and tokens.")).action(
    async (opts: ControlOptions) => {
      const s = await callSandboxControl<StatusAnswer>(opts.sandboxUrl, 'GET', '/status');
      if (opts.json) return printJson(s);
      const rows: [string, string][] = [
        ['access-token lifetime', `${s.accessTokenTtl} s`],
        ['token endpoint', s.outage.tokenEndpointUntil ? `OUTAGE until ${clock(s.outage.tokenEndpointUntil)}` : 'up'],
        ['API', s.outage.apiUntil ? `OUTAGE until ${clock(s.outage.apiUntil)}` : 'up'],
        ['faults', Object.keys(s.faults).length ? JSON.stringify(s.faults) : 'none'],
        ['live grants', String(s.live.grants)],
        ['live access tokens', String(s.live.accessTokens)],
        ['unused refresh tokens', String(s.live.refreshTokens)],
        ...Object.entries(s.stats)
          .filter(([, v]) => typeof v === 'number')
          .map(([k, v]): [string, string] => [k, String(v)]),
      ];
      const width = Math.max(...rows.map(([k]) => k.length));
      for (const [k, v] of rows) print(`${k.padEnd(width)}  ${v}`);
    },
  );
}

/** The control subcommands of `warrant sandbox`. */
export function sandboxControlCommands(): Command[] {
  return [revokeCommand(), outageCommand(), expireTokensCommand(), statusCommand()];
}
