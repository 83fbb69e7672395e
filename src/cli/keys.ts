import { Command } from 'commander';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { loadConfig } from '../config/index.ts';
import { generateKeySpec, keyFileName, readKeyFileSpecs, writeKeyFile, fileKeyRingSource, parseKeyRing, staticKeyRing, type KeyRingSource } from '../crypto/index.ts';
import { createStore } from '../store/index.ts';

export function keysCommand(): Command {
  const keys = new Command('keys').description('Manage the key-encryption keys that wrap every stored secret');

  keys
    .command('generate')
    .description('Print a new random key as id:base64, for WARRANT_MASTER_KEY')
    .action(() => {
      process.stdout.write(`${generateKeySpec()}\n`);
    });

  keys
    .command('rotate')
    .description(
      'Re-wrap every data key under the active key and retire the keys no longer used, while Warrant runs. ' +
        'Embedded mode without WARRANT_MASTER_KEY: a new key is generated into the key file first. ' +
        'With WARRANT_MASTER_KEY: put the new key first in the list (id:key,old:key) on every instance, then run this.',
    )
    .option('--batch-size <n>', 'secrets re-wrapped per page', '500')
    .option('--settle-ms <ms>', 'embedded mode: wait this long after writing the new key so running servers pick it up', '2000')
    .option('--wait-ms <ms>', 'wait up to this long for running instances to stop sealing with an old key before keeping it', '15000')
    .action(async (opts: { batchSize: string; settleMs: string; waitMs: string }) => {
      const config = loadConfig();
      let source: KeyRingSource;
      let keyFile: string | undefined;
      if (config.masterKey) {
        source = staticKeyRing(parseKeyRing(config.masterKey));
      } else {
        keyFile = join(config.dataDir, keyFileName);
        if (!existsSync(keyFile)) throw new Error(`no key file at ${keyFile}: nothing to rotate (start Warrant once first)`);
        source = fileKeyRingSource(keyFile);
      }
      // The key check runs here, before any key is added: a ring that cannot open the store exits 78.
      const store = await createStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, ring: source });
      try {
        if (keyFile) {
          writeKeyFile(keyFile, [generateKeySpec(), ...readKeyFileSpecs(keyFile)]);
          source.reload?.();
          await new Promise((r) => setTimeout(r, Number(opts.settleMs)));
        }
        // Sealed under the new active key first, so retiring the old key below cannot strand it.
        await store.canary.reseal();
        const report = await store.vault.rotate({ batchSize: Number(opts.batchSize), waitMs: Number(opts.waitMs) });
        if (keyFile && report.retired.length) {
          // Retired keys wrap nothing any more: drop them from the file.
          const keep = readKeyFileSpecs(keyFile).filter((spec) => !report.retired.includes(spec.slice(0, spec.indexOf(':'))));
          writeKeyFile(keyFile, keep);
        }
        process.stdout.write(
          `active key: ${report.activeKey}\nre-wrapped: ${report.rewrapped}\nretired: ${report.retired.join(', ') || '(none)'}\n`,
        );
        for (const lease of report.inUse) {
          process.stdout.write(
            `kept: ${lease.key}, still in use by instance ${lease.instance} (lease until ${new Date(lease.until).toISOString()}); ` +
              'run `warrant keys rotate` again once every instance seals with the new key\n',
          );
        }
        if (config.masterKey && report.retired.length) {
          process.stdout.write('You may now remove the retired keys from WARRANT_MASTER_KEY.\n');
        }
      } finally {
        await store.close();
      }
    });
  return keys;
}
