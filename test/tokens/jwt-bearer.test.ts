import { test } from 'node:test';
import assert from 'node:assert/strict';
import { providerSchema } from '../../src/providers/index.ts';
import { startLifecycle, sleep } from '../helpers/lifecycle.ts';

test('a JWT bearer (RFC 7523) service account: private key sealed, token minted on use and re-minted ahead of expiry', { timeout: 30_000 }, async () => {
  const env = await startLifecycle({ sandbox: { accessTokenTtl: 4 } });
  try {
    const account = await env.sandbox.addServiceAccount({ client_id: 'svc-reports', scope: 'items:read' });
    env.warrant.catalog.set('sandbox-sa', providerSchema.parse(env.sandbox.serviceAccountDefinition('sandbox-sa', account.client_id)));
    const row = await env.warrant.connections.importGrant(
      { provider: 'sandbox-sa', owner: 'ops@example.com', scopes: ['items:read'], private_key: account.privateKeyPem, params: { subject: 'alice@example.com' } },
      'admin',
    );
    const raw = await env.warrant.store.db.selectFrom('secrets').select('ciphertext').where('ref', '=', row.id).execute();
    assert.ok(raw.length === 1 && !raw[0]!.ciphertext.includes('PRIVATE KEY'));
    env.sandbox.resetStats();
    const t = await env.warrant.tokens.getFreshToken(row.id);
    assert.equal(env.sandbox.stats().jwtBearerRequests, 1);
    const who = await (await fetch(`${env.sandbox.apiBaseUrl}/whoami`, { headers: { authorization: `Bearer ${t.accessToken}` } })).json();
    assert.equal(who.sub, 'alice@example.com');
    await sleep(3_200);
    const t2 = await env.warrant.tokens.getFreshToken(row.id);
    assert.notEqual(t2.accessToken, t.accessToken);
    assert.equal(env.sandbox.stats().jwtBearerRequests, 2);
  } finally {
    await env.cleanup();
  }
});
