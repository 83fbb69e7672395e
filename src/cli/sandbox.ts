import { Command } from 'commander';

export function sandboxCommand(): Command {
  return new Command('sandbox')
    .description(
      'Run a real OAuth 2.1 provider and a small API on loopback, for testing agents against expiry, ' +
        'rotation, revocation and faults. Prints a provider definition that points at it.',
    )
    .option('--port <port>', 'port to listen on (0 = any free port)', '7171')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--token-ttl <seconds>', 'access-token lifetime in seconds', '3600')
    .option('--no-rotation', 'keep refresh tokens valid after use (no rotation)')
    .option('--id <id>', 'provider id in the printed definition', 'sandbox')
    .action(async (opts: { port: string; host: string; tokenTtl: string; rotation: boolean; id: string }) => {
      const ttl = Number(opts.tokenTtl);
      if (!Number.isInteger(ttl) || ttl <= 0) throw new Error('--token-ttl: a whole number of seconds');
      // Loaded on use: `warrant serve` need not load the sandbox's IdP.
      const { startSandbox, formatProviderYaml } = await import('../sandbox/index.ts');
      const sandbox = await startSandbox({
        host: opts.host,
        port: Number(opts.port),
        accessTokenTtl: ttl,
        rotateRefreshTokens: opts.rotation,
      });
      process.stdout.write(`# Warrant sandbox: IdP ${sandbox.issuer}  API ${sandbox.apiBaseUrl}\n`);
      process.stdout.write('# Save this as a provider definition (e.g. providers/sandbox.yaml) and point WARRANT_PROVIDERS at it.\n');
      process.stdout.write(formatProviderYaml(sandbox.providerDefinition(opts.id)));
      const stop = async () => {
        await sandbox.close();
        process.exit(0);
      };
      process.on('SIGINT', () => void stop());
      process.on('SIGTERM', () => void stop());
    });
}
