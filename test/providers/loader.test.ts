import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCatalog, ProviderDefinitionError } from '../../src/providers/index.ts';

// DESIGN ("Running it"): a WARRANT_PROVIDERS file holds one definition or a list of them; a
// definition may say `extends: <catalog id>` to inherit an entry and override fields, objects
// merging deeply. Both were refused ("expected object, received array"; unknown key `extends`).
test('a WARRANT_PROVIDERS file may hold a list, and `extends` merges deeply over a catalog entry', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-providers-'));
  try {
    const file = join(dir, 'extra.yaml');
    writeFileSync(
      file,
      [
        '- id: github-enterprise',
        '  extends: github',
        '  environments:',
        '    production:',
        '      token_url: https://github.acme.example/login/oauth/access_token',
        '- id: github-enterprise-ci',
        '  extends: github-enterprise',
        '  token_lifetime: 600',
      ].join('\n'),
    );
    const catalog = loadCatalog(file);
    const github = catalog.get('github')!;
    const ghe = catalog.get('github-enterprise')!;
    assert.equal(ghe.environments.production!.token_url, 'https://github.acme.example/login/oauth/access_token');
    assert.equal(ghe.environments.production!.authorization_url, github.environments.production!.authorization_url, 'siblings of the replaced field are kept');
    assert.deepEqual(ghe.scopes, github.scopes);
    assert.equal(catalog.get('github-enterprise-ci')!.token_lifetime, 600);
    assert.equal(catalog.get('github-enterprise-ci')!.environments.production!.token_url, ghe.environments.production!.token_url);

    writeFileSync(file, 'id: x\nextends: no-such-provider\n');
    assert.throws(() => loadCatalog(file), (err: unknown) => err instanceof ProviderDefinitionError && /extends: no provider no-such-provider/.test(err.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
