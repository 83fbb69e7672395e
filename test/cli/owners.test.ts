import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startSandbox } from '../../src/sandbox/index.ts';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { runWarrant } from '../helpers/process.ts';

// `warrant owners list | show | offboard` against a running Warrant: the human output names each
// grant's verification, --json is the API's answer, and a grant not verified dead exits 1.

describe('warrant owners (CLI against a running server)', () => {
  let env: LifecycleEnv;
  let deaf: Receiver;
  let cli: Record<string, string>;
  before(async () => {
    deaf = await startReceiver();
    const sandbox = await startSandbox({ accessTokenTtl: 600 });
    env = await startLifecycle({
      sharedSandbox: sandbox,
      providers: [{ extends: 'sandbox', id: 'sandbox-deaf', environments: { production: { revocation_url: `${deaf.url}/revoke` } } }],
    });
    const a = env.warrant.app.server.address();
    assert.ok(a && typeof a !== 'string');
    cli = { WARRANT_URL: `http://127.0.0.1:${a.port}`, WARRANT_ADMIN_TOKEN: ADMIN_TOKEN };
  });
  after(async () => {
    await env?.cleanup();
    await env?.sandbox.close();
    await deaf?.close();
  });

  async function run(args: string[], extra: Record<string, string> = {}) {
    const p = runWarrant(args, { ...cli, ...extra });
    const code = await p.exit();
    return { code, stdout: p.stdout(), stderr: p.stderr() };
  }

  test('offboard prints each grant’s verification and exits 0 when all are verified; list and show follow', { timeout: 120_000 }, async () => {
    const owner = 'rita@example.com';
    const con = await env.connect(owner);
    const agent = await env.warrant.agents.create({ name: 'nightly', owner, grants: [{ connection: con, scopes: ['items:read'] }] });

    const listed = await run(['owners', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^OWNER\s+STATUS\s+AGENTS\s+CONNECTIONS$/m);
    assert.match(listed.stdout, /^rita@example\.com\s+active\s+1\s+1$/m);

    const off = await run(['owners', 'offboard', owner]);
    assert.equal(off.code, 0, `${off.stdout}\n${off.stderr}`);
    assert.match(off.stdout, /^owner rita@example\.com: offboarded at /m);
    assert.match(off.stdout, /^agents revoked: 1 of 1$/m);
    assert.match(off.stdout, new RegExp(`^\\s+yes\\s+${con}\\s+sandbox\\s+yes\\s+introspection\\s+introspection reports the grant inactive$`, 'm'));
    assert.ok(!off.stdout.includes(agent.api_key));

    const json = await run(['owners', 'offboard', owner, '--json']);
    assert.equal(json.code, 0);
    const report = JSON.parse(json.stdout);
    assert.deepEqual(report.agents, [{ id: agent.id, revoked: true }]);
    assert.equal(report.connections[0].verification, 'introspection');

    const shown = await run(['owners', 'show', owner]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^owner rita@example\.com: offboarded$/m);
    assert.match(shown.stdout, /^agents \(not revoked\): 0, connections: 0$/m);
  });

  test('a grant not verified dead: exit 1, the grant named with why', { timeout: 120_000 }, async () => {
    const owner = 'sam@example.com';
    const con = await env.connectTo('sandbox-deaf', owner);
    const off = await run(['owners', 'offboard', owner]);
    assert.equal(off.code, 1, `${off.stdout}\n${off.stderr}`);
    assert.match(off.stdout, new RegExp(`^\\s+NO\\s+${con}\\s+sandbox-deaf\\s+yes\\s+introspection\\s+introspection still reports the grant active$`, 'm'));
    assert.match(off.stdout, /^1 grant\(s\) not verified dead/m);
  });

  test('an unknown owner and a missing credential: one line on stderr, exit 1', { timeout: 60_000 }, async () => {
    const missing = await run(['owners', 'offboard', 'nobody@example.com']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^warrant: not_found: .*nobody@example\.com/m);
    const p = runWarrant(['owners', 'list'], { WARRANT_URL: cli.WARRANT_URL! });
    assert.equal(await p.exit(), 1);
    assert.match(p.stderr(), /no admin credential/);
  });
});
