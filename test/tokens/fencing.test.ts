import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWarrantError } from '../../src/errors/index.ts';
import { startLifecycle, sleep } from '../helpers/lifecycle.ts';

// Regression (security review, medium 8): failure writes were neither versioned nor fenced. A
// refresh in flight while the owner re-connected came back `invalid_grant` (the old grant was
// gone) and flipped the freshly re-connected connection to `reauth_required`.
test('a refresh failing after the connection was re-connected under it does not mark the new grant dead', { timeout: 60_000 }, async () => {
  const env = await startLifecycle({ sandbox: { accessTokenTtl: 2, rotateRefreshTokens: true } });
  try {
    const id = await env.connect('frank@example.com', ['items:read']);
    const old = await env.warrant.tokens.getFreshToken(id);
    await sleep(2_100);
    env.sandbox.setFaults({ tokenEndpoint: { delayMs: 1_500, count: 1 } });
    const inFlight = env.warrant.tokens.getFreshToken(id).then(
      () => undefined,
      (e: unknown) => e,
    );
    await sleep(300);
    // The new grant's tokens outlive the checks below however slow the machine is (2 s ones did not under load).
    env.sandbox.setAccessTokenTtl(60);
    // The owner re-connects meanwhile: a new grant lands in the row (as the connect flow writes it),
    // and the old grant is revoked at the IdP, so the refresh in flight comes back invalid_grant.
    const donor = await env.connect('frank@example.com', ['items:read']);
    const fresh = await env.warrant.tokens.getFreshToken(donor);
    const secrets = await env.warrant.store.vault.getAll('connection', donor);
    await env.warrant.store.transaction(async (trx) => {
      await env.warrant.store.vault.put({ scope: 'connection', ref: id, field: 'access_token' }, secrets.access_token!, trx);
      await env.warrant.store.vault.put({ scope: 'connection', ref: id, field: 'refresh_token' }, secrets.refresh_token!, trx);
      await env.warrant.store.connections.update(id, { status: 'active', expires_at: fresh.expiresAt, last_refreshed_at: Date.now(), updated_at: Date.now() }, trx);
    });
    await env.sandbox.revokeGrantOf(old.accessToken);
    const err = await inFlight;
    assert.ok(err === undefined || isWarrantError(err, 'refresh_unavailable') || isWarrantError(err, 'reauth_required'), String(err));
    const row = await env.warrant.store.connections.get(id);
    assert.equal(row!.status, 'active', 'the re-connected grant is not marked dead by the stale refresh');
    env.warrant.tokens.invalidate(id);
    const t = await env.warrant.tokens.getFreshToken(id);
    const res = await fetch(`${env.sandbox.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${t.accessToken}` } });
    assert.equal(res.status, 200);
  } finally {
    env.sandbox.setFaults({});
    await env.cleanup();
  }
});
