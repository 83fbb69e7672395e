import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';

const sdk = new URL('../../sdk/', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', sdk), 'utf8')) as Record<string, unknown>;
const sources = readdirSync(new URL('src/', sdk)).filter((f) => f.endsWith('.ts'));

// The SDK runs on Node, Deno, Bun and edge runtimes with nothing but the platform's fetch.
describe('@warrant/sdk is self-contained', () => {
  test('its runtime files import only each other: no node: modules, no packages', () => {
    assert.ok(sources.length >= 5, sources.join());
    for (const file of sources) {
      const text = readFileSync(new URL(`src/${file}`, sdk), 'utf8');
      const specifiers = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]|\brequire\s*\(/g)].map(
        (m) => m[1] ?? m[2] ?? 'require(',
      );
      for (const s of specifiers) assert.match(s, /^\.\/[a-z-]+\.js$/, `${file} imports ${s}`);
      assert.doesNotMatch(text, /\bBuffer\b|\bprocess\.|\b__dirname\b/, `${file} uses a Node global directly`);
    }
  });

  test('package.json: no dependencies, ESM, exports dist with types, Apache-2.0, public', () => {
    for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies', 'bundleDependencies']) assert.equal(pkg[field], undefined, field);
    assert.equal(pkg.name, '@warrant/sdk');
    assert.equal(pkg.type, 'module');
    assert.equal(pkg.license, 'Apache-2.0');
    assert.notEqual(pkg.private, true);
    assert.deepEqual(pkg.exports, { '.': { types: './dist/index.d.ts', default: './dist/index.js' }, './package.json': './package.json' });
  });

  test('the built package (npm install ran its prepare) loads by name and exports the same API as the source', async () => {
    const built = await import('@warrant/sdk');
    const source = await import('../../sdk/src/index.ts');
    assert.deepEqual(Object.keys(built).sort(), Object.keys(source).sort());
    assert.equal(typeof built.Warrant, 'function');
  });
});
