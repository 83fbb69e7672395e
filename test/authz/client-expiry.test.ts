import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';
import { authzDefaults } from '../../src/authz/index.ts';
import { authzTables } from '../../src/authz/tables.ts';
import { eventually } from '../helpers/lifecycle.ts';
import { authorizationUrl, authorizeAsOwner, discover, insecure, registerPublicClient, startAuthzWarrant, type AuthzWarrant } from './helpers.ts';

// RFC 7591 clients expire after 90 days unused: a client's row carries `expires_at` = last use + 90
// days, moved forward when a token is issued to it, and the sweep deletes it once past.

const REDIRECT = 'http://127.0.0.1:53684/callback';
const DAY = 86_400_000;

describe('dynamically registered clients unused for 90 days expire', () => {
  let w: AuthzWarrant;
  let as: oauth.AuthorizationServer;
  before(async () => {
    w = await startAuthzWarrant('sqlite');
    as = await discover(w.base, w.base);
  });
  after(() => w?.cleanup());

  const expiryOf = async (clientId: string) =>
    (await authzTables(w.warrant.store.db).selectFrom('authz_models').select('expires_at').where('kind', '=', 'Client').where('key', '=', clientId).executeTakeFirst())?.expires_at;
  const setExpiry = (clientId: string, at: number) =>
    authzTables(w.warrant.store.db).updateTable('authz_models').set({ expires_at: at }).where('kind', '=', 'Client').where('key', '=', clientId).execute();

  async function tokens(client: oauth.Client) {
    const verifier = oauth.generateRandomCodeVerifier();
    const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource: `${w.base}/mcp/warrant`, verifier, state: 's' });
    const { callback } = await authorizeAsOwner(w.base, url, 'expiry-owner@example.com');
    const params = oauth.validateAuthResponse(as, client, callback, 's');
    return oauth.processAuthorizationCodeResponse(as, client, await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, insecure));
  }

  test('a use moves the expiry forward; 90 days unused and the client is gone, and swept', async () => {
    const client = await registerPublicClient(as, REDIRECT);
    const registeredExpiry = Number(await expiryOf(client.client_id));
    assert.ok(Math.abs(registeredExpiry - (Date.now() + authzDefaults.clientUnusedMs)) < 60_000, '90 days from registration');

    // Last used 80 days ago: a token request makes it 90 days from now again.
    await setExpiry(client.client_id, Date.now() + 10 * DAY);
    const t = await tokens(client);
    await eventually(async () => Number(await expiryOf(client.client_id)) > Date.now() + 89 * DAY, 5000);

    // Last used 91 days ago: the client is unknown at once, before any sweep.
    await setExpiry(client.client_id, Date.now() - DAY);
    const refused = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), t.refresh_token!, insecure);
    assert.equal(refused.status, 401);
    assert.equal(((await refused.json()) as { error: string }).error, 'invalid_client');

    // And the sweep deletes the row (kept a while past expiry, like every expired row).
    await setExpiry(client.client_id, Date.now() - DAY - authzDefaults.sweepRetentionMs);
    assert.ok((await w.warrant.authz.sweep()) >= 1);
    assert.equal(await expiryOf(client.client_id), undefined);
  });

  test('admin-registered headless clients do not expire for lack of use', async () => {
    const { generateKeyPair, exportJWK } = await import('jose');
    const { publicKey } = await generateKeyPair('ES256');
    const res = await fetch(`${w.base}/v1/authz/clients`, {
      method: 'POST',
      headers: { authorization: `Bearer ${(await import('../helpers/app.ts')).ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ owner: 'expiry-owner@example.com', client_name: 'ci', jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1' }] } }),
    });
    assert.equal(res.status, 201);
    const { client_id } = (await res.json()) as { client_id: string };
    assert.equal(await expiryOf(client_id), null);
  });
});
