import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Reproduces security review finding 21: the sandbox IdP belongs to `warrant sandbox` only;
// `warrant serve` must never load it. Since issue 10, serve runs Warrant's own authorization server
// (src/authz) on oidc-provider: oidc-provider is loaded for that and only with it, and nothing of
// the sandbox's (its IdP, its accounts, its knobs) comes along.

const entry = fileURLToPath(new URL('../helpers/serve-recording-loads.mjs', import.meta.url));

test('warrant serve never loads src/sandbox; oidc-provider only with its own authorization server (src/authz)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-imports-'));
  const log = join(dir, 'loads.txt');
  const child = spawn(process.execPath, [entry], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOAD_LOG: log, WARRANT_DATA_DIR: join(dir, 'data'), WARRANT_PORT: '0', WARRANT_ADMIN_TOKEN: 'imports-admin-token-0123456789' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((done) => child.on('exit', done));
  try {
    const started = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no start within 120 s: ${out.slice(0, 2000)}`)), 120_000);
      const check = () => {
        const m = /CJS_LOADED (.*)\n/.exec(out);
        if (m && out.includes('warrant listening')) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      };
      child.stdout.on('data', check);
      child.stderr.on('data', check);
      void exited.then(() => reject(new Error(`exited before start: ${out.slice(0, 2000)}`)));
    });
    const esm = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    const cjs = JSON.parse(started) as string[];
    // The recorder saw the server being built: the check below means something.
    assert.ok(esm.some((u) => u.endsWith('/src/warrant.ts')) && esm.some((u) => u.includes('/node_modules/fastify/')), 'loads were recorded');
    assert.ok(cjs.length > 0, 'CommonJS loads were recorded');
    for (const url of [...esm, ...cjs]) assert.ok(!/\/src\/sandbox\//.test(url), `serve loaded ${url}`);
    assert.ok(esm.some((u) => /\/src\/authz\//.test(u)), 'what loads oidc-provider is the authorization server');
  } finally {
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
