import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { isWarrantError } from '../../src/errors/index.ts';
import { startLifecycle, sleep, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';

const TTL_SECONDS = 2;

// Regression (security review, medium 9): a refresh that timed out after it was sent (or whose
// 200 could not be processed) was retried with the same refresh token. At a provider that rotates
// them, the IdP may already have consumed it: a replay reads as token theft and revokes the grant.
describe('a refresh whose outcome is unknown, at a provider that rotates refresh tokens', () => {
  let sandbox: Sandbox;
  let env: LifecycleEnv;
  before(async () => {
    sandbox = await startSandbox({ accessTokenTtl: TTL_SECONDS, rotateRefreshTokens: true });
    env = await startLifecycle({
      sharedSandbox: sandbox,
      env: { WARRANT_HTTP_TIMEOUT_MS: '800' },
      providers: [{ ...sandbox.providerDefinition('sandbox-grace'), refresh_token_grace_period: 30 }],
    });
  });
  after(async () => {
    await env?.cleanup();
    await sandbox?.close();
  });

  /** A connection whose next refresh is sent, then times out (the IdP holds it past the deadline). */
  async function timedOutRefresh(provider: string): Promise<string> {
    const id = await env.connectTo(provider, 'erin@example.com', ['items:read']);
    await sleep(TTL_SECONDS * 1000 + 200);
    sandbox.setFaults({ tokenEndpoint: { delayMs: 2_000, count: 1 } });
    const err = await env.warrant.tokens.getFreshToken(id).then(
      () => assert.fail('the refresh timed out: no token is safe to serve'),
      (e: unknown) => e,
    );
    assert.ok(isWarrantError(err, 'refresh_unavailable'), String(err));
    sandbox.setFaults({});
    return id;
  }

  test('no grace period: the stored refresh token is not sent again; refresh_unavailable, one alert; an admin-forced refresh recovers', async () => {
    const id = await timedOutRefresh('sandbox');
    sandbox.resetStats();
    for (let i = 0; i < 5; i++) {
      const err = await env.warrant.tokens.getFreshToken(id).then(() => undefined, (e: unknown) => e);
      assert.ok(isWarrantError(err, 'refresh_unavailable'));
      assert.match((err as Error).message, /outcome of the last refresh .* is unknown/);
      await sleep(500);
    }
    assert.equal(sandbox.stats().tokenRequests, 0, 'the possibly consumed refresh token was never replayed');
    const row = await env.warrant.store.connections.get(id);
    assert.equal(row!.status, 'active', 'not declared dead: the grant may well be alive');
    assert.equal(row!.refresh_due_at, null, 'the scheduler does not pick it up either');
    const alerts = await env.warrant.audit.query({ type: 'connection.refresh_indeterminate', subject: `connection:${id}` });
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0]!.data.error, 'timeout');

    const forced = await env.warrant.app.inject({ method: 'POST', url: `/v1/connections/${id}/refresh`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(forced.statusCode, 200, forced.body);
    assert.equal(forced.json().refreshed, true);
    const t = await env.warrant.tokens.getFreshToken(id);
    const res = await fetch(`${sandbox.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${t.accessToken}` } });
    assert.equal(res.status, 200);
    assert.equal((await env.warrant.store.connections.get(id))!.refresh_indeterminate_at, null);
    assert.equal(sandbox.stats().reuseDetected, 0);
  });

  test('within the grace period: the next attempt sends the stored refresh token again and recovers', async () => {
    const id = await timedOutRefresh('sandbox-grace');
    sandbox.resetStats();
    await sleep(2_100); // one probe interval
    const t = await env.warrant.tokens.getFreshToken(id);
    assert.ok(t.refreshed);
    assert.equal(sandbox.stats().refreshRequests, 1);
    const row = await env.warrant.store.connections.get(id);
    assert.equal(row!.refresh_indeterminate_at, null);
    assert.equal(row!.status, 'active');
  });
});
