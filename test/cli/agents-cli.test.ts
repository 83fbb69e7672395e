import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { agentsCommand, parseGrant } from '../../src/cli/agents.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { baseUrlOf, cliRunner } from '../helpers/cli.ts';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';

// `warrant agents create|list|show|revoke` against a running Warrant: the key is printed once, by
// create only, with a line saying so; grants parse from `<connection>:<scopes>[:export]`; lists
// mark orphans; --json is the API's answer; errors are one line on stderr with exit 1.

describe('warrant agents (CLI against a running server)', () => {
  let env: LifecycleEnv;
  const base = () => baseUrlOf(env);
  const agents = cliRunner(agentsCommand, base);
  const api = async (method: string, path: string) => {
    const res = await fetch(`${base()}${path}`, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    return res.json();
  };

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 600 } });
  });
  after(async () => {
    await env?.cleanup();
  });

  test('a grant spec: the connection before the first colon, scopes with colons, :export at the end', () => {
    assert.deepEqual(parseGrant('con_1:items:read,items:write:export'), { connection: 'con_1', scopes: ['items:read', 'items:write'], token_export: true });
    assert.deepEqual(parseGrant('con_1:items:read'), { connection: 'con_1', scopes: ['items:read'] });
    assert.throws(() => parseGrant('con_1'), /expected <connection>:<scope>/);
    assert.throws(() => parseGrant('con_1::export'), /at least one scope/);
  });

  test('create prints the key once with a warning; list, show and revoke never print it', { timeout: 60_000 }, async () => {
    const con = await env.connect('hal@example.com');
    const created = await agents(['agents', 'create', '--name', 'nightly', '--owner', 'hal@example.com', '--grant', `${con}:items:read,items:write:export`]);
    assert.equal(created.code, 0, created.stderr);
    const key = /^api key: (\S+)$/m.exec(created.stdout)?.[1];
    assert.ok(key, created.stdout);
    assert.equal(created.stdout.split(key).length, 2, 'the key appears exactly once');
    assert.match(created.stdout, /^Store it now: it will not be shown again/m);
    assert.match(created.stdout, new RegExp(`^grants:\\n  ${con}:items:read,items:write:export$`, 'm'));
    const id = /^agent:\s+(\S+)$/m.exec(created.stdout)![1]!;
    // The key works: Warrant authenticates the agent with it.
    assert.equal((await env.warrant.agents.authenticate(key))?.id, id);

    const listed = await agents(['agents', 'list', '--owner', 'hal@example.com']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^ID\s+NAME\s+OWNER\s+STATUS\s+LAST USED\s+GRANTS$/m);
    assert.match(listed.stdout, new RegExp(`^${id}\\s+nightly\\s+hal@example\\.com\\s+active\\s+\\S+.*\\s+${con}:items:read,items:write:export$`, 'm'));
    assert.deepEqual(JSON.parse((await agents(['agents', 'list', '--json', '--owner', 'hal@example.com'])).stdout), await api('GET', '/v1/agents?owner=hal%40example.com'));

    const shown = await agents(['agents', 'show', id]);
    assert.match(shown.stdout, /^name:\s+nightly$/m);
    assert.match(shown.stdout, /^expires:\s+never$/m);
    const revoked = await agents(['agents', 'revoke', id]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`^revoked: ${id} \\(nightly, hal@example\\.com\\) at \\d{4}-`));
    assert.equal(JSON.parse((await agents(['agents', 'show', id, '--json'])).stdout).status, 'revoked');
    for (const out of [listed.stdout, shown.stdout, revoked.stdout]) assert.ok(!out.includes(key));
    assert.equal(await env.warrant.agents.authenticate(key).catch(() => undefined), undefined);
  });

  test('--json create is the API’s answer; --expires-at; --orphaned lists why', { timeout: 60_000 }, async () => {
    const con = await env.connect('ida@example.com');
    const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
    const r = await agents(['agents', 'create', '--name', 'report', '--owner', 'ida@example.com', '--grant', `${con}:items:read`, '--expires-at', expiresAt, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const a = JSON.parse(r.stdout);
    assert.match(a.api_key, /\S{20,}/);
    assert.equal(Date.parse(a.expires_at), Date.parse(expiresAt));
    assert.deepEqual(a.grants, [{ connection: con, scopes: ['items:read'], token_export: false }]);

    // Its only connection revoked: the agent is an orphan (no usable connection).
    await api('DELETE', `/v1/connections/${con}`);
    const orphans = await agents(['agents', 'list', '--orphaned']);
    assert.equal(orphans.code, 0, orphans.stderr);
    assert.match(orphans.stdout, /^ID\s+NAME\s+OWNER\s+STATUS\s+LAST USED\s+GRANTS\s+ORPHANED$/m);
    assert.match(orphans.stdout, new RegExp(`^${a.id}\\s+report\\s+ida@example\\.com\\s+active\\s+never\\s+no_usable_connection$`, 'm'));
  });

  test('create sets tags; list filters on them: --end-user, --organization, --label', { timeout: 60_000 }, async () => {
    const con = await env.connect('tess@example.com');
    const made = await agents(['agents', 'create', '--name', 'tagged', '--owner', 'tess@example.com', '--grant', `${con}:items:read`, '--end-user', 'u_9', '--organization', 'acme', '--label', 'team=billing', '--json']);
    assert.equal(made.code, 0, made.stderr);
    const created = JSON.parse(made.stdout) as { id: string; end_user: string; organization: string; labels: Record<string, string> };
    assert.deepEqual([created.end_user, created.organization, created.labels], ['u_9', 'acme', { team: 'billing' }]);
    const other = await env.warrant.agents.create({ name: 'plain', owner: 'tess@example.com', grants: [{ connection: con, scopes: ['items:read'] }] });
    for (const filter of [['--end-user', 'u_9'], ['--organization', 'acme'], ['--label', 'team=billing'], ['--label', 'team']]) {
      const out = await agents(['agents', 'list', ...filter]);
      assert.equal(out.code, 0, out.stderr);
      assert.ok(out.stdout.includes(created.id) && !out.stdout.includes(other.id), `${filter.join(' ')}: ${out.stdout}`);
      assert.match(out.stdout, /\suser=u_9 org=acme team=billing$/m);
    }
  });

  test('a bad grant, an unknown connection, an unknown agent: one line on stderr, exit 1', { timeout: 30_000 }, async () => {
    const bad = await agents(['agents', 'create', '--name', 'x', '--owner', 'o@example.com', '--grant', 'con_only']);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'warrant: --grant con_only: expected <connection>:<scope>[,<scope>…][:export]\n');
    const unknown = await agents(['agents', 'create', '--name', 'x', '--owner', 'o@example.com', '--grant', 'con_nope:items:read']);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr.split('\n').filter(Boolean).length, 1, unknown.stderr);
    assert.match(unknown.stderr, /^warrant: \w+: .*con_nope/);
    const missing = await agents(['agents', 'revoke', 'agt_nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^warrant: not_found: /);
  });
});
