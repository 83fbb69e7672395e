import { Command } from 'commander';
import { loadConfig } from '../config/index.ts';
import { createAdminTokens, createStore } from '../store/index.ts';
import { keyRingFor } from '../warrant.ts';

export function adminTokenCommand(): Command {
  const cmd = new Command('admin-token').description('Manage the stored admin token (used when WARRANT_ADMIN_TOKEN is unset)');

  cmd
    .command('rotate')
    .alias('reset')
    .description(
      'Store a new admin token (hashed) and print it once on stdout; it is never shown again. Running servers ' +
        'accept it at once and refuse the old one within a second or two; works on the embedded store and on PostgreSQL.',
    )
    .action(async () => {
      const config = loadConfig();
      const notice = (m: string) => process.stderr.write(`${m}\n`);
      const store = await createStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, ring: keyRingFor(config, notice) });
      try {
        const token = await createAdminTokens({ settings: store.settings, now: Date.now }).rotate();
        // The token goes to stdout alone (scripts capture it); the explanation to stderr.
        process.stdout.write(`${token}\n`);
        notice('New admin token stored (shown once above, store it now); the previous one stops working.');
        if (config.adminToken) {
          notice(
            'Note: WARRANT_ADMIN_TOKEN is set here; a server started with it accepts only that token, ' +
              'and stores its hash over this one when it starts.',
          );
        }
      } finally {
        await store.close();
      }
    });
  return cmd;
}
