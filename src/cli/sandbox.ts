import { Command } from 'commander';
import { sandboxControlCommands } from './sandbox-controls.ts';

/** A whole number written in decimal digits only (`Number` alone would take '', '1e3', '0x10'). */
function wholeNumber(value: string, flag: string, what: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error(`${flag}: ${what}`);
  return n;
}

export function sandboxCommand(): Command {
  const cmd = new Command('sandbox')
    .description(
      'Run a real OAuth 2.1 provider and a small API on loopback, for testing agents against expiry, ' +
        'rotation, revocation and faults. Prints a provider definition that points at it. ' +
        'The subcommands act on a running sandbox (--sandbox-url).',
    )
    .option('--port <port>', 'port to listen on (0 = any free port)', '7171')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--token-ttl <seconds>', 'access-token lifetime in seconds', '3600')
    .option('--no-rotation', 'keep refresh tokens valid after use (no rotation)')
    .option('--id <id>', 'provider id in the printed definition (default: sandbox, or with --persona the catalog id)')
    .option('--persona <id>', 'also play a real provider at the protocol level (slack, github, xero, atlassian, …); prints a definition that extends its catalog entry')
    .option('--extends <catalog-id>', 'with --persona: the catalog entry the definition extends (e.g. atlassian-confluence)')
    .option('--clock-skew <seconds>', "seconds added to the time in every answer's Date header (may be negative; tests `warrant doctor`)", '0')
    .action(async (opts: { port: string; host: string; tokenTtl: string; rotation: boolean; id?: string; clockSkew: string; persona?: string; extends?: string }) => {
      const port = wholeNumber(opts.port, '--port', 'a port number from 0 to 65535', 0, 65535);
      const ttl = wholeNumber(opts.tokenTtl, '--token-ttl', 'a whole number of seconds', 1);
      // The same rule as a provider definition's id, so the printed definition always loads.
      if (opts.id !== undefined && !/^[a-z0-9-]+$/.test(opts.id)) throw new Error('--id: lower-case letters, digits and "-"');
      const clockSkewSeconds = /^-?\d{1,9}$/.test(opts.clockSkew) ? Number(opts.clockSkew) : NaN;
      if (Number.isNaN(clockSkewSeconds)) throw new Error('--clock-skew: a whole number of seconds');
      // Loaded on use: `warrant serve` need not load the sandbox's IdP.
      const { startSandbox, formatProviderYaml, personas } = await import('../sandbox/index.ts');
      const persona = opts.persona === undefined ? undefined : personas.get(opts.persona);
      if (opts.persona !== undefined && !persona) throw new Error(`--persona: one of ${[...personas.keys()].join(', ')}`);
      if (opts.extends !== undefined && !persona?.catalog.includes(opts.extends)) {
        throw new Error(`--extends: needs --persona, and one of ${persona ? persona.catalog.join(', ') : 'its catalog entries'}`);
      }
      const sandbox = await startSandbox({
        host: opts.host,
        port,
        accessTokenTtl: ttl,
        rotateRefreshTokens: opts.rotation,
        clockSkewSeconds,
        persona: opts.persona,
      });
      // The sandbox's own URLs carry the bound port (never 0 with --port 0).
      process.stdout.write(`# Warrant sandbox: IdP ${sandbox.issuer}  API ${sandbox.apiBaseUrl}  control ${sandbox.controlUrl}\n`);
      process.stdout.write('# Save this as a provider definition (e.g. providers/sandbox.yaml) and point WARRANT_PROVIDERS at it.\n');
      if (sandbox.persona) {
        process.stdout.write(`# Persona ${sandbox.persona.id}: ${sandbox.persona.name} at ${sandbox.persona.url('https://example.com').replace(/example\.com$/, '{host}')}/…\n`);
        process.stdout.write(formatProviderYaml(sandbox.persona.providerDefinition({ id: opts.id, extends: opts.extends })));
      } else {
        process.stdout.write(formatProviderYaml(sandbox.providerDefinition(opts.id ?? 'sandbox')));
      }
      let stopping = false;
      const stop = async () => {
        if (stopping) return;
        stopping = true;
        await sandbox.close();
        process.exit(0);
      };
      process.on('SIGINT', () => void stop());
      process.on('SIGTERM', () => void stop());
    });
  for (const sub of sandboxControlCommands()) cmd.addCommand(sub);
  return cmd;
}
