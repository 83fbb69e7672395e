import { Command } from 'commander';
import { loadConfig } from '../config/index.ts';
import { createWarrant } from '../warrant.ts';

export function serveCommand(): Command {
  return new Command('serve')
    .description('Run the Warrant server (settings come from WARRANT_* environment variables; see README)')
    .option('--port <port>', 'overrides WARRANT_PORT')
    .option('--host <host>', 'overrides WARRANT_HOST')
    .addHelpText(
      'after',
      '\nEnvironment: WARRANT_PORT, WARRANT_HOST, WARRANT_PUBLIC_URL, WARRANT_ADMIN_TOKEN, WARRANT_MASTER_KEY,\n' +
        'WARRANT_DATA_DIR, DATABASE_URL, REDIS_URL, WARRANT_PROVIDERS, WARRANT_LOG_LEVEL, WARRANT_CONFIG (file).',
    )
    .action(async (opts: { port?: string; host?: string }) => {
      const env = { ...process.env };
      if (opts.port) env.WARRANT_PORT = opts.port;
      if (opts.host) env.WARRANT_HOST = opts.host;
      const config = loadConfig(env);
      const warrant = await createWarrant(config, { notice: (m) => process.stderr.write(`${m}\n`) });
      if (warrant.generatedAdminToken) {
        // Shown this once; only its hash is stored. Not sent to the logger on purpose.
        process.stderr.write(
          `\nAdmin token (shown once, store it now): ${warrant.generatedAdminToken}\n` +
            'Set WARRANT_ADMIN_TOKEN to choose your own instead.\n\n',
        );
      }
      const address = await warrant.listen();
      warrant.logger.info({ address, store: config.storeKind, providers: warrant.catalog.size }, 'warrant listening');
      let closing = false;
      const stop = async (signal: string) => {
        if (closing) return;
        closing = true;
        warrant.logger.info({ signal }, 'shutting down');
        await warrant.close();
        process.exit(0);
      };
      process.on('SIGINT', () => void stop('SIGINT'));
      process.on('SIGTERM', () => void stop('SIGTERM'));
    });
}
