import { Command } from 'commander';
import { stringify } from 'yaml';
import { loadConfig } from '../config/index.ts';
import { loadCatalog, readProviderPath, redirectUriOf } from '../providers/index.ts';

export function providersCommand(): Command {
  const providers = new Command('providers').description('The provider catalog: built-in definitions merged with WARRANT_PROVIDERS');

  providers
    .command('list')
    .description('List every provider id, its auth kind and environments')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const catalog = loadCatalog(loadConfig().providersPath);
      const rows = [...catalog.values()].map((p) => ({ id: p.id, auth: p.auth, environments: Object.keys(p.environments), name: p.name ?? '' }));
      if (opts.json) return void process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      const width = Math.max(...rows.map((r) => r.id.length));
      for (const r of rows) process.stdout.write(`${r.id.padEnd(width)}  ${r.auth.padEnd(18)} ${r.environments.join(',').padEnd(24)} ${r.name}\n`);
    });

  providers
    .command('show <id>')
    .description('Print one provider definition as YAML (secrets appear as their ${env:…} references) and the redirect URI to register')
    .action((id: string) => {
      const config = loadConfig();
      const p = loadCatalog(config.providersPath).get(id);
      if (!p) throw new Error(`no provider ${id}; see \`warrant providers list\``);
      // A YAML comment, so the output stays a definition that can be saved and edited.
      if (p.auth === 'oauth2') process.stdout.write(`# redirect URI to register at the IdP: ${redirectUriOf(config.publicUrl, p, config.redirectPerProvider)}\n`);
      process.stdout.write(stringify(p));
    });

  providers
    .command('validate <path>')
    .description('Check a provider definition file, or a folder of them, against the schema')
    .action((path: string) => {
      // Resolved against the built-in catalog, as `serve` would (`extends:` names a built-in entry).
      const defs = readProviderPath(path, loadCatalog());
      for (const d of defs) process.stdout.write(`ok  ${d.id}\n`);
    });
  return providers;
}
