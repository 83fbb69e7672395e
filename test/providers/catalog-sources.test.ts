import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadBuiltinProviders, type Provider } from '../../src/providers/index.ts';

// Issue 9, item 2: every catalog entry records where each endpoint and each lifetime it states
// comes from (the `sources` map: fact → "D: <url> — …" for the provider's own documentation,
// "S: <url> — …" for a secondary source, "unverified: <url> — …" where no source confirmed it).

const providers = loadBuiltinProviders();

const lifetimeFields = ['token_lifetime', 'refresh_token_lifetime', 'refresh_token_idle_timeout', 'refresh_token_grace_period'] as const;

/** Keys that vouch for an environment's endpoints: the environment itself, or its token or API URL. */
function endpointKeys(envName: string): string[] {
  return [
    `environments.${envName}`,
    `environments.${envName}.token_url`,
    `environments.${envName}.api_base_url`,
    envName,
    'environments',
    'endpoints',
    'token_url',
    'api_base_url',
  ];
}

function sourcesOf(p: Provider): Record<string, string> {
  assert.ok(p.sources && Object.keys(p.sources).length > 0, `${p.id} has no sources`);
  return p.sources;
}

test('every catalog entry has sources, each naming its kind (D, S, unverified) and an http(s) URL', () => {
  for (const p of providers) {
    for (const [fact, text] of Object.entries(sourcesOf(p))) {
      assert.match(text, /^(D|S|unverified)\s*:/, `${p.id} sources.${fact} does not start with "D:", "S:" or "unverified:": ${text}`);
      assert.match(text, /https?:\/\/[^\s)]+\.[^\s)]+/, `${p.id} sources.${fact} names no http(s) URL: ${text}`);
    }
  }
});

test('every environment of every entry has a source for its endpoints', () => {
  for (const p of providers) {
    const sources = sourcesOf(p);
    for (const envName of Object.keys(p.environments)) {
      const keys = endpointKeys(envName);
      assert.ok(
        keys.some((k) => sources[k] !== undefined),
        `${p.id}: no source for the endpoints of environment ${envName} (one of ${keys.join(', ')})`,
      );
    }
  }
});

test('every lifetime an entry states, and refresh-token rotation, has a source', () => {
  for (const p of providers) {
    const sources = sourcesOf(p);
    for (const field of lifetimeFields) {
      if (p[field] !== undefined) assert.ok(sources[field], `${p.id} sets ${field} = ${p[field]} but has no sources.${field}`);
    }
    if (p.refresh_token_rotation) assert.ok(sources.refresh_token_rotation, `${p.id} says refresh tokens rotate but has no sources.refresh_token_rotation`);
  }
});

test('docs/providers.md has a row for every catalog entry, and none for an entry that does not exist', async () => {
  const { readFile } = await import('node:fs/promises');
  const doc = await readFile(new URL('../../docs/providers.md', import.meta.url), 'utf8');
  const table = doc.slice(doc.indexOf('## The catalog'));
  const rows = [...table.matchAll(/^\| ([a-z0-9-]+) \|/gm)].map((m) => m[1]!).filter((id) => id !== 'id');
  assert.deepEqual([...rows].sort(), providers.map((p) => p.id).sort());
});
