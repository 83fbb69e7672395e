import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { runWarrant } from '../helpers/process.ts';

test('warrant providers list and show read the catalog; WARRANT_PROVIDERS merges over it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-prov-'));
  try {
    writeFileSync(
      join(dir, 'acme.yaml'),
      'id: acme\nauth: client_credentials\nclient_id: acme\nclient_secret: ${env:ACME_SECRET}\nenvironments:\n  production: { token_url: https://id.acme.example/token, api_base_url: https://api.acme.example }\n',
    );
    const list = runWarrant(['providers', 'list', '--json'], { WARRANT_PROVIDERS: dir, ACME_SECRET: 'never-printed' });
    assert.equal(await list.exit(), 0, list.stderr());
    const rows = JSON.parse(list.stdout()) as { id: string }[];
    assert.ok(rows.length >= 26);
    assert.ok(rows.some((r) => r.id === 'acme') && rows.some((r) => r.id === 'salesforce'));
    const show = runWarrant(['providers', 'show', 'acme'], { WARRANT_PROVIDERS: dir, ACME_SECRET: 'never-printed' });
    assert.equal(await show.exit(), 0);
    const def = parse(show.stdout());
    assert.equal(def.client_secret, '${env:ACME_SECRET}', 'the reference, never the value');
    assert.ok(!show.stdout().includes('never-printed'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('warrant providers validate names the file and field at fault', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-prov-'));
  try {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'id: Bad_Id\nauth: oauth2\nenvironments:\n  production: { api_base_url: https://api.example }\n');
    const bad = runWarrant(['providers', 'validate', file], {});
    assert.equal(await bad.exit(), 1);
    assert.match(bad.stderr(), /bad\.yaml: id: id is lower-case/);
    assert.match(bad.stderr(), /environments\.production\.authorization_url: required when auth is oauth2/);
    const ok = runWarrant(['providers', 'validate', join(process.cwd(), 'src/providers/catalog')], {});
    assert.equal(await ok.exit(), 0);
    assert.match(ok.stdout(), /^ok {2}freee$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
