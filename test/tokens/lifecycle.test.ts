import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, sleep, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { isWarrantError } from '../../src/errors/index.ts';
import type { AuditEntry } from '../../src/events/index.ts';

async function apiStatus(env: LifecycleEnv, token: string): Promise<number> {
  const res = await fetch(`${env.sandbox.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

describe('token lifecycle against the sandbox (4 s tokens, rotation on)', () => {
  let env: LifecycleEnv;
  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 4, rotateRefreshTokens: true } });
  });
  after(async () => env?.cleanup());

  test('100 concurrent getFreshToken calls at the moment of expiry make exactly one refresh call', async () => {
    const id = await env.connect();
    const first = await env.warrant.tokens.getFreshToken(id);
    await sleep(3_200); // inside the skew window (a quarter of 4 s)
    env.sandbox.resetStats();
    const results = await Promise.all(Array.from({ length: 100 }, () => env.warrant.tokens.getFreshToken(id)));
    assert.equal(env.sandbox.stats().refreshRequests, 1);
    assert.equal(new Set(results.map((r) => r.accessToken)).size, 1);
    assert.notEqual(results[0]!.accessToken, first.accessToken);
    assert.equal(await apiStatus(env, results[0]!.accessToken), 200);
  });

  test('a fresh token is served from cache with no IdP call', async () => {
    const id = await env.connect();
    env.sandbox.resetStats();
    for (let i = 0; i < 50; i++) await env.warrant.tokens.getFreshToken(id);
    assert.equal(env.sandbox.stats().tokenRequests, 0);
  });

  test('a token the upstream rejected is replaced once, however many callers report it', async () => {
    const id = await env.connect();
    const t = await env.warrant.tokens.getFreshToken(id);
    env.sandbox.resetStats();
    const results = await Promise.all(Array.from({ length: 20 }, () => env.warrant.tokens.getFreshToken(id, { rejectedToken: t.accessToken })));
    assert.equal(env.sandbox.stats().refreshRequests, 1);
    assert.ok(results.every((r) => r.accessToken !== t.accessToken));
    // Reported again after it was already replaced: no second refresh.
    await env.warrant.tokens.getFreshToken(id, { rejectedToken: t.accessToken });
    assert.equal(env.sandbox.stats().refreshRequests, 1);
  });

  test('min_ttl longer than the remaining life refreshes now; longer than any token can live does not loop', async () => {
    const id = await env.connect();
    await sleep(1_500);
    env.sandbox.resetStats();
    const t = await env.warrant.tokens.getFreshToken(id, { minTtlSeconds: 3 });
    assert.equal(env.sandbox.stats().refreshRequests, 1);
    assert.ok(t.expiresAt! - Date.now() > 3_000);
    for (let i = 0; i < 5; i++) await env.warrant.tokens.getFreshToken(id, { minTtlSeconds: 3600 });
    assert.equal(env.sandbox.stats().refreshRequests, 1, 'an impossible min_ttl is capped, not a refresh per call');
  });

  test('a grant revoked at the IdP: reauth_required, one event with a re-connect link, zero IdP calls after', async () => {
    const id = await env.connect();
    const t = await env.warrant.tokens.getFreshToken(id);
    const events: AuditEntry[] = [];
    const off = env.warrant.bus.on('connection.reauth_required', (e) => events.push(e));
    await env.sandbox.revokeGrantOf(t.accessToken);
    await sleep(3_200);
    env.sandbox.resetStats();
    const failures: unknown[] = [];
    for (let i = 0; i < 25; i++) {
      await env.warrant.tokens.getFreshToken(id).then(
        () => assert.fail('a dead grant must not yield a token'),
        (err) => failures.push(err),
      );
    }
    off();
    assert.equal(failures.length, 25);
    assert.ok(failures.every((e) => isWarrantError(e, 'reauth_required')));
    const problem = (failures[0] as { toProblem(): Record<string, unknown> }).toProblem();
    // Not a capability: the connection in the admin API (re-connect links: test/tokens/reconnect.test.ts).
    assert.equal(problem.reauth_url, `${env.warrant.config.publicUrl}/v1/connections/${id}`);
    assert.equal(env.sandbox.stats().refreshRequests, 1, 'one refused refresh, then no IdP call');
    assert.equal(events.length, 1);
    assert.equal((await env.warrant.connections.get(id)).status, 'reauth_required');
    const audit = await env.warrant.audit.query({ type: 'connection.reauth_required', subject: `connection:${id}` });
    assert.equal(audit.length, 1);
    assert.equal(audit[0]!.data.error, 'invalid_grant');
    assert.ok(!JSON.stringify(audit).includes(t.accessToken));
  });

  test('IdP 5xx for a window: the valid token keeps being served, refresh_unavailable after expiry, then recovery', async () => {
    const id = await env.connect();
    const t = await env.warrant.tokens.getFreshToken(id);
    env.sandbox.setFaults({ tokenEndpoint: { status: 503 } });
    // A caller that wants more than the ~3 s left forces a refresh; it fails, and the token, still
    // well outside its safety margin (tokens/outage.ts), is served stale.
    await sleep(1_000);
    const stale = await env.warrant.tokens.getFreshToken(id, { minTtlSeconds: 3.5 });
    assert.equal(stale.accessToken, t.accessToken);
    assert.equal(stale.stale, true);
    await sleep(3_200); // expired now
    const err = await env.warrant.tokens.getFreshToken(id).catch((e) => e);
    assert.ok(isWarrantError(err, 'refresh_unavailable'), String(err));
    assert.ok(Number(err.toProblem().retry_after) >= 1);
    env.sandbox.setFaults({});
    const recovered = await eventually(() => env.warrant.tokens.getFreshToken(id).catch(() => undefined), 10_000, 200);
    assert.equal(await apiStatus(env, recovered.accessToken), 200);
    const types = (await env.warrant.audit.query({ subject: `connection:${id}` })).map((e) => e.type);
    assert.ok(types.includes('connection.refresh_failing'));
    assert.ok(types.includes('connection.recovered'));
    assert.equal(types.filter((x) => x === 'connection.refresh_failing').length, 1, 'one entry per incident');
  });

  test('DELETE revokes at the IdP, verifies by introspection, then deletes', async () => {
    const id = await env.connect();
    const t = await env.warrant.tokens.getFreshToken(id);
    const res = await env.warrant.app.inject({ method: 'DELETE', url: `/v1/connections/${id}`, headers: { authorization: 'Bearer test-admin-token-0123456789abcdef' } });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), {
      id,
      revoked: true,
      verified: true,
      verification: 'introspection',
      detail: 'introspection reports the grant inactive',
      deleted: true,
    });
    assert.equal(await apiStatus(env, t.accessToken), 401, 'the whole grant is dead, access token included');
    assert.equal(await env.warrant.store.connections.get(id), undefined);
    assert.deepEqual(await env.warrant.store.vault.getAll('connection', id), {});
  });

  test('import of an existing grant, then forced refresh through the admin API', async () => {
    const source = await env.connect();
    // Take the sealed tokens out as an operator migrating from another system would have them.
    const secrets = await env.warrant.store.vault.getAll('connection', source);
    await env.warrant.store.connections.delete(source);
    const res = await env.warrant.app.inject({
      method: 'POST',
      url: '/v1/connections',
      headers: { authorization: 'Bearer test-admin-token-0123456789abcdef' },
      payload: { provider: 'sandbox', owner: 'erin@example.com', access_token: secrets.access_token, refresh_token: secrets.refresh_token, expires_in: 4, scopes: ['items:read'] },
    });
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json();
    assert.equal(body.status, 'active');
    assert.ok(!res.body.includes(secrets.access_token!));
    env.sandbox.resetStats();
    const forced = await env.warrant.app.inject({ method: 'POST', url: `/v1/connections/${body.id}/refresh`, headers: { authorization: 'Bearer test-admin-token-0123456789abcdef' } });
    assert.equal(forced.json().refreshed, true);
    assert.equal(env.sandbox.stats().refreshRequests, 1);
    const list = await env.warrant.app.inject({ url: '/v1/connections?owner=erin@example.com', headers: { authorization: 'Bearer test-admin-token-0123456789abcdef' } });
    assert.deepEqual(list.json().connections.map((c: { id: string }) => c.id), [body.id]);
  });

  test('client credentials connections are minted on first use and re-minted ahead of expiry', async () => {
    const { stringify } = await import('yaml');
    void stringify;
    const def = env.sandbox.providerDefinition('sandbox');
    assert.ok(def);
    // The sandbox client allows client_credentials; a provider entry with auth client_credentials:
    env.warrant.catalog.set('sandbox-cc', { ...env.warrant.catalog.get('sandbox')!, id: 'sandbox-cc', auth: 'client_credentials' });
    const row = await env.warrant.connections.importGrant({ provider: 'sandbox-cc', owner: 'svc@example.com', scopes: ['items:read'] }, 'admin');
    env.sandbox.resetStats();
    const t = await env.warrant.tokens.getFreshToken(row.id);
    assert.equal(env.sandbox.stats().clientCredentialsRequests, 1);
    assert.equal(await apiStatus(env, t.accessToken), 200);
    await sleep(3_200);
    const t2 = await env.warrant.tokens.getFreshToken(row.id);
    assert.notEqual(t2.accessToken, t.accessToken);
    assert.equal(env.sandbox.stats().clientCredentialsRequests, 2);
  });

  test('the audit chain verifies, and any edit breaks it', async () => {
    const ok = await env.warrant.audit.verify();
    assert.equal(ok.ok, true);
    assert.ok(ok.entries > 5);
    const mid = Math.floor(ok.entries / 2);
    await env.warrant.store.db.updateTable('audit_events').set({ actor: 'mallory' }).where('seq', '=', mid).execute();
    const bad = await env.warrant.audit.verify();
    assert.equal(bad.ok, false);
    assert.equal(bad.first_bad, mid);
  });
});
