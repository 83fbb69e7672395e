import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../config/index.ts';
import { formatJson, formatTable, runDoctor, type ConnectionSource } from '../doctor/index.ts';
import { loadCatalog } from '../providers/index.ts';
import { createStore } from '../store/index.ts';
import { keyRingFor } from '../warrant.ts';

export function doctorCommand(): Command {
  return new Command('doctor')
    .description(
      'Check each provider with client credentials against its IdP (discovery metadata, the client, sandbox/production ' +
        'mix-ups, the clock) and each stored connection (scopes, token lifetimes, dead or dying grants). ' +
        'One line per finding with its fix; exits 1 if any is an error.',
    )
    .option('--provider <id>', 'check only this provider (and its connections)')
    .option('--connection <id>', 'check only this connection and its provider')
    .option('--json', 'print { ok, checks: [{ check, subject, verdict, detail, fix }] }')
    .action(async (opts: { provider?: string; connection?: string; json?: boolean }) => {
      const config = loadConfig();
      const catalog = loadCatalog(config.providersPath);
      // Embedded mode with no database yet: nothing is stored, and doctor creates nothing.
      const hasStore = config.storeKind === 'postgres' || existsSync(join(config.dataDir, 'warrant.db'));
      const store = hasStore
        ? await createStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, ring: keyRingFor(config, (m) => process.stderr.write(`${m}\n`)) })
        : undefined;
      try {
        const connections: ConnectionSource | undefined = store && { get: (id) => store.connections.get(id), list: (f) => store.connections.list(f) };
        const findings = await runDoctor({ catalog, env: process.env, connections, provider: opts.provider, connection: opts.connection });
        process.stdout.write(opts.json ? formatJson(findings) : formatTable(findings));
        if (findings.some((f) => f.verdict === 'error')) process.exitCode = 1;
      } finally {
        await store?.close();
      }
    });
}
