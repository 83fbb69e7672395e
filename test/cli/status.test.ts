import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { statusCommand, statusLines } from '../../src/cli/status.ts';
import { createStatus } from '../../src/admin/index.ts';
import { isWarrantError } from '../../src/errors/index.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { baseUrlOf, cliRunner } from '../helpers/cli.ts';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { storeKinds } from '../helpers/stores.ts';

// `warrant status` and GET /v1/status: counts by status, the next expiries soonest first, the
// failing connections with their last error, agents and orphans, and the audit chain.

for (const kind of storeKinds) describe(`warrant status (CLI against a running server) and GET /v1/status (${kind.name})`, { skip: kind.skip }, () => {
  let env: LifecycleEnv;
  const base = () => baseUrlOf(env);
  const status = cliRunner(statusCommand, base);
  const api = async (path: string, token = ADMIN_TOKEN) => {
    const res = await fetch(`${base()}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: await res.json() };
  };

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 600 }, store: kind.name });
  });
  after(async () => {
    await env?.cleanup();
  });

  test('counts, upcoming expiries, failing connections, orphans and the chain; the CLI prints them, --json is the API’s', { timeout: 60_000 }, async () => {
    const healthy = await env.connect('jo@example.com');
    const other = await env.connect('kim@example.com');
    const dead = await env.connect('lou@example.com');
    // Revoked at the IdP, then found out by a refresh: reauth_required with its error.
    const t = await env.warrant.tokens.getFreshToken(dead);
    await env.sandbox.revokeGrantOf(t.accessToken);
    const err = await env.warrant.connections.forceRefresh(dead, 'test').catch((e: unknown) => e);
    assert.ok(isWarrantError(err, 'reauth_required'), String(err));
    await env.warrant.agents.create({ name: 'ok', owner: 'jo@example.com', grants: [{ connection: healthy, scopes: ['items:read'] }] });
    const orphan = await env.warrant.agents.create({ name: 'stranded', owner: 'lou@example.com', grants: [{ connection: dead, scopes: ['items:read'] }] });
    await env.warrant.agents.create({ name: 'gone', owner: 'kim@example.com', grants: [{ connection: other, scopes: ['items:read'] }] }).then((a) => env.warrant.agents.revoke(a.id, 'test'));

    const res = await api('/v1/status?limit=5');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const s = res.body;
    assert.deepEqual(s.connections, { total: 3, by_status: { active: 2, reauth_required: 1, revoked: 0, error: 0 } });
    assert.deepEqual(s.upcoming_expiries.map((c: { id: string }) => c.id).sort(), [healthy, other].sort());
    const dues = s.upcoming_expiries.map((c: { refresh_due_at: string }) => Date.parse(c.refresh_due_at));
    assert.deepEqual(dues, [...dues].sort((a, b) => a - b), 'soonest first');
    assert.equal(s.failing.length, 1);
    assert.equal(s.failing[0].id, dead);
    assert.equal(s.failing[0].status, 'reauth_required');
    assert.equal(s.failing[0].last_error, 'invalid_grant');
    assert.deepEqual(s.agents, { total: 3, by_status: { active: 2, expired: 0, suspended: 0, revoked: 1 }, orphans: 1, orphans_capped: false });
    assert.equal(s.audit.chain, 'ok');
    assert.ok(s.audit.entries > 0 && s.audit.head_seq >= s.audit.entries);

    const out = await status(['status', '--limit', '5']);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^connections: 3 \(active 2, reauth_required 1, revoked 0, error 0\)$/m);
    assert.match(out.stdout, /^agents: {6}3 \(active 2, expired 0, suspended 0, revoked 1\); orphans: 1$/m);
    assert.match(out.stdout, /^audit chain: ok \(\d+ entries, verified \d+s ago\)$/m);
    assert.match(out.stdout, /^upcoming expiries \(next refreshes due\):\n {2}CONNECTION\s+PROVIDER\s+OWNER\s+EXPIRES\s+REFRESH DUE$/m);
    assert.match(out.stdout, new RegExp(`^ {2}${healthy}\\s+sandbox\\s+jo@example\\.com\\s+in \\d+m\\s+in \\d+m$`, 'm'));
    assert.match(out.stdout, new RegExp(`^ {2}${dead}\\s+sandbox\\s+lou@example\\.com\\s+reauth_required\\s+\\d+s ago\\s+invalid_grant$`, 'm'));
    assert.ok(!out.stdout.includes(orphan.api_key));

    const json = await status(['status', '--json']);
    const body = JSON.parse(json.stdout);
    assert.deepEqual({ ...body, generated_at: null }, { ...(await api('/v1/status')).body, generated_at: null });

    // Role read is enough.
    const reader = await fetch(`${base()}/v1/admin-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'dash', role: 'read' }),
    }).then((r) => r.json());
    assert.equal((await api('/v1/status', reader.api_key)).status, 200);
    assert.equal((await api('/v1/status', 'wrong')).status, 401);
  });

  test('a long audit walk: status answers `verifying` within its wait, then the cached result', { timeout: 30_000, skip: kind.name !== 'sqlite' && 'once is enough' }, async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let walks = 0;
    const st = createStatus({
      db: env.warrant.store.db,
      agents: env.warrant.agents,
      audit: {
        head: () => env.warrant.audit.head(),
        verify: async () => {
          walks++;
          await gate;
          return { ok: false, entries: 7, first_bad: 5, reason: 'chain_break' };
        },
      },
      now: Date.now,
      options: { auditWaitMs: 50 },
    });
    const t0 = Date.now();
    assert.equal((await st.report()).audit.chain, 'verifying');
    assert.ok(Date.now() - t0 < 2_000);
    assert.equal((await st.report()).audit.chain, 'verifying');
    release();
    await new Promise((r) => setTimeout(r, 10));
    const after = (await st.report()).audit;
    assert.equal(after.chain, 'broken');
    assert.equal(after.first_bad, 5);
    assert.equal(walks, 1, 'one walk in flight at a time, its result cached');

    const lines = statusLines({ ...(await st.report()), audit: after }, { stdout: () => {}, stderr: () => {}, color: false });
    assert.ok(lines.includes('audit chain: BROKEN at seq 5: chain_break (run: warrant audit verify)'), lines.join('\n'));
  });
});
