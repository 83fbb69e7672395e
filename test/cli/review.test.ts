import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { runWarrant } from '../helpers/process.ts';

// `warrant review scopes` against a running Warrant: a table of granted / used / unused /
// suggested per agent and grant, the PATCH body that applies it, --json as the API answers.

describe('warrant review scopes (CLI against a running server)', () => {
  let env: LifecycleEnv;
  let cli: Record<string, string>;
  let conn: string;
  let agent: { id: string; api_key: string };

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 600 } });
    const a = env.warrant.app.server.address();
    assert.ok(a && typeof a !== 'string');
    cli = { WARRANT_URL: `http://127.0.0.1:${a.port}`, WARRANT_ADMIN_TOKEN: ADMIN_TOKEN };
    conn = await env.connect('alice@example.com', ['items:read', 'items:write']);
    agent = await env.warrant.agents.create({ name: 'reporter', owner: 'alice@example.com', grants: [{ connection: conn, scopes: ['items:read', 'items:write'] }] });
    const res = await fetch(`${cli.WARRANT_URL}/v1/proxy/${conn}/items`, { headers: { authorization: `Bearer ${agent.api_key}` } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    await eventually(async () => (await env.warrant.audit.query({ type: 'proxy.call' })).length > 0);
  });
  after(async () => {
    await env?.cleanup();
  });

  async function run(args: string[]) {
    const p = runWarrant(args, cli);
    const code = await p.exit();
    return { code, stdout: p.stdout(), stderr: p.stderr() };
  }

  test('a table per grant, and the PATCH body that narrows it', { timeout: 120_000 }, async () => {
    const r = await run(['review', 'scopes']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^scopes used between \S+ and \S+ \(proxied calls\)$/m);
    assert.match(r.stdout, /^AGENT\s+OWNER\s+CONNECTION\s+GRANTED\s+USED\s+UNUSED\s+SUGGESTED\s+ACTION$/m);
    assert.match(r.stdout, new RegExp(`^${agent.id} \\(reporter\\)\\s+alice@example\\.com\\s+${conn}\\s+items:read items:write\\s+items:read\\s+items:write\\s+items:read\\s+narrow$`, 'm'));
    assert.ok(r.stdout.includes(`${agent.id}: {"grants":[{"connection":"${conn}","scopes":["items:read"]}]}`), r.stdout);
    assert.ok(!r.stdout.includes(agent.api_key));

    const json = await run(['review', 'scopes', '--json', '--since', '1d']);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    assert.deepEqual(report.agents[0].grants[0].used, ['items:read']);
    assert.deepEqual(report.agents[0].grants[0].unused, ['items:write']);
  });

  test('a bad --since: one line on stderr naming the field, exit 1', { timeout: 60_000 }, async () => {
    const r = await run(['review', 'scopes', '--since', 'last tuesday']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^warrant: invalid_request: since: /m);
  });
});
