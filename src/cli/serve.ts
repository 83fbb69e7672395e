import { Command } from 'commander';
import { loadConfig } from '../config/index.ts';
import { createWarrant, type Warrant } from '../warrant.ts';

export function serveCommand(): Command {
  return new Command('serve')
    .description('Run the Warrant server (settings come from WARRANT_* environment variables; see README)')
    .option('--port <port>', 'overrides WARRANT_PORT')
    .option('--host <host>', 'overrides WARRANT_HOST')
    .addHelpText(
      'after',
      '\nEnvironment: WARRANT_PORT, WARRANT_HOST, WARRANT_PUBLIC_URL, WARRANT_ADMIN_TOKEN, WARRANT_MASTER_KEY,\n' +
        'WARRANT_DATA_DIR, DATABASE_URL, REDIS_URL, WARRANT_PROVIDERS, WARRANT_LOG_LEVEL, WARRANT_DB_POOL_SIZE,\n' +
        'WARRANT_AUDIT_WRITE_DEADLINE_MS, WARRANT_SHUTDOWN_GRACE_SECONDS, WARRANT_METRICS_TOKEN, WARRANT_SCIM_TOKEN (SCIM 2.0 at /scim/v2; unset: off),\n' +
        'WARRANT_ALLOW_INSECURE_HTTP, WARRANT_CONFIG (file).\n' +
        'Exit codes: 0 clean shutdown; 1 error, or in-flight work abandoned at shutdown; 78 the key ring cannot open the store,\n' +
        'or the data dir or key file is readable by other users.',
    )
    .action(async (opts: { port?: string; host?: string }) => {
      const env = { ...process.env };
      if (opts.port) env.WARRANT_PORT = opts.port;
      if (opts.host) env.WARRANT_HOST = opts.host;
      const config = loadConfig(env);
      const warrant = await createWarrant(config, { notice: (m) => process.stderr.write(`${m}\n`) });
      let address: string;
      try {
        address = await warrant.listen();
      } catch (err) {
        // EADDRINUSE and friends: nothing was generated or stored; close what was opened and report.
        await warrant.close({ graceMs: 2_000 }).catch(() => undefined);
        throw err;
      }
      if (warrant.generatedAdminToken) {
        // Shown this once, after the port is bound; only its hash is stored. Not sent to the logger on purpose.
        process.stderr.write(
          `\nAdmin token (shown once, store it now): ${warrant.generatedAdminToken}\n` +
            'Set WARRANT_ADMIN_TOKEN to choose your own instead, or run `warrant admin-token rotate` for a new one.\n\n',
        );
      }
      // Handlers first: whoever waits for the "listening" line may signal at once.
      handleSignals(warrant);
      warrant.logger.info({ address, store: config.storeKind, providers: warrant.catalog.size }, 'warrant listening');
    });
}

/**
 * SIGTERM/SIGINT: stop accepting and drain for at most the grace (exit 0 if everything drained,
 * 1 if work was abandoned). A second signal exits at once with 1.
 */
function handleSignals(warrant: Warrant): void {
  let closing = false;
  const exit = (code: number) => {
    // The logger may buffer: give it a moment, never more.
    const done = () => process.exit(code);
    setTimeout(done, 200).unref();
    try {
      warrant.logger.flush(done);
    } catch {
      done();
    }
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      process.stderr.write(`warrant: ${signal} again: exiting now, in-flight work abandoned\n`);
      process.exit(1);
    }
    closing = true;
    warrant.logger.info({ signal, grace_seconds: warrant.config.shutdownGraceSeconds }, 'shutting down: draining in-flight work');
    warrant.close().then(
      (report) => {
        if (report.drained) warrant.logger.info({ elapsed_ms: report.elapsedMs }, 'shut down');
        exit(report.drained ? 0 : 1);
      },
      (err: unknown) => {
        warrant.logger.error({ err }, 'shutdown failed');
        exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
