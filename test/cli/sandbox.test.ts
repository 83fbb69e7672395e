import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { providerSchema } from '../../src/providers/schema.ts';
import { runWarrant, type Spawned } from '../helpers/process.ts';

/** The definition part of stdout (every line not starting with '#'), once it is complete and valid. */
async function printedDefinition(p: Spawned, timeoutMs = 20_000) {
  await p.waitFor(/^# Warrant sandbox: /m, timeoutMs);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const yaml = p
      .stdout()
      .split('\n')
      .filter((line) => !line.startsWith('#'))
      .join('\n');
    try {
      return providerSchema.parse(parseYaml(yaml));
    } catch (err) {
      // The YAML may still be arriving; give up only at the deadline or when the process is gone.
      if (Date.now() > deadline || p.child.exitCode !== null) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

test('warrant sandbox --port 0 prints a valid provider definition on the bound port, serves discovery, stops on SIGTERM', async () => {
  const p = runWarrant(['sandbox', '--port', '0', '--token-ttl', '5', '--id', 'demo'], {});
  try {
    const def = await printedDefinition(p);
    const [, headerIssuer] = /^# Warrant sandbox: IdP (\S+)/m.exec(p.stdout())!;
    assert.doesNotMatch(headerIssuer!, /:0\//, 'the header shows the bound port, not 0');
    assert.equal(def.id, 'demo');
    assert.equal(def.token_lifetime, 5);
    const env = def.environments['production'];
    assert.ok(env?.issuer, 'the definition names the issuer');
    assert.equal(env.issuer, headerIssuer);
    const { port } = new URL(env.issuer);
    assert.ok(Number(port) > 0, `a real port in ${env.issuer}`);
    assert.equal(env.api_base_url, `${new URL(env.issuer).origin}/api`);

    const discovery = await fetch(`${env.issuer}/.well-known/openid-configuration`);
    assert.equal(discovery.status, 200);
    const meta = (await discovery.json()) as { issuer: string; token_endpoint: string };
    assert.equal(meta.issuer, env.issuer);
    assert.equal(meta.token_endpoint, env.token_url);

    assert.equal(await p.kill('SIGTERM'), 0, `exits cleanly on SIGTERM; stderr=${p.stderr()}`);
  } finally {
    await p.kill('SIGKILL');
  }
});

test('warrant sandbox --help lists --token-ttl and --no-rotation', async () => {
  const p = runWarrant(['sandbox', '--help'], {});
  assert.equal(await p.exit(), 0);
  assert.match(p.stdout(), /--token-ttl <seconds>/);
  assert.match(p.stdout(), /--no-rotation/);
});

test('warrant sandbox refuses a bad --id, --port or --token-ttl before starting', async () => {
  for (const [args, flag] of [
    [['--id', 'Not_Valid'], '--id'],
    [['--port', 'abc'], '--port'],
    [['--token-ttl', '0'], '--token-ttl'],
  ] as const) {
    const p = runWarrant(['sandbox', '--port', '0', ...args], {});
    assert.equal(await p.exit(), 1, `${args.join(' ')} exits 1`);
    assert.match(p.stderr(), new RegExp(`warrant: ${flag}:`));
    assert.equal(p.stdout(), '', 'nothing printed as a definition');
  }
});
