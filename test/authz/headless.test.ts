import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { discover, insecure, startAuthzWarrant, type AuthzWarrant } from './helpers.ts';

// Headless agents (SEP-1046): a client registered by the admin with its public keys gets
// client_credentials tokens by signing an assertion (private_key_jwt, RFC 7523), no browser.

const OWNER = 'ci-owner@example.com';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

describe('client credentials with private_key_jwt (headless agents)', () => {
  let w: AuthzWarrant;
  let as: oauth.AuthorizationServer;
  before(async () => {
    w = await startAuthzWarrant('sqlite');
    as = await discover(w.base, w.base);
  });
  after(() => w?.cleanup());

  async function keys() {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const kid = `k-${Math.random().toString(36).slice(2)}`;
    return { privateKey, kid, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
  }

  const registerHeadless = (body: Record<string, unknown>, headers: Record<string, string> = admin) =>
    fetch(`${w.base}/v1/authz/clients`, { method: 'POST', headers, body: JSON.stringify(body) });

  async function clientCredentials(clientId: string, key: { privateKey: CryptoKey; kid: string }, params: Record<string, string>) {
    const client: oauth.Client = { client_id: clientId, token_endpoint_auth_method: 'private_key_jwt' };
    return oauth.clientCredentialsGrantRequest(as, client, oauth.PrivateKeyJwt({ key: key.privateKey, kid: key.kid }), new URLSearchParams(params), insecure);
  }

  test('an admin-registered client gets an audience-bound JWT for its owner, usable at /mcp/warrant', async () => {
    assert.ok(as.grant_types_supported?.includes('client_credentials'));
    const key = await keys();
    const res = await registerHeadless({ owner: OWNER, client_name: 'nightly-ci', jwks: { keys: [key.jwk] }, scope: 'warrant:read warrant:call' });
    assert.equal(res.status, 201, await res.clone().text());
    const reg = (await res.json()) as { client_id: string; agent_id: string; owner: string };
    assert.match(reg.client_id, /^wcl_/);
    assert.match(reg.agent_id, /^agt_/);
    assert.equal(reg.owner, OWNER);

    const resource = `${w.base}/mcp/warrant`;
    const client: oauth.Client = { client_id: reg.client_id, token_endpoint_auth_method: 'private_key_jwt' };
    const tokens = await oauth.processClientCredentialsResponse(as, client, await clientCredentials(reg.client_id, key, { resource, scope: 'warrant:read' }));
    assert.equal(tokens.refresh_token, undefined, 'no refresh token for client credentials');
    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(as.jwks_uri!)), { issuer: w.base, audience: resource, typ: 'at+jwt' });
    assert.equal(payload.client_id, reg.client_id);
    assert.equal(payload.agent_id, reg.agent_id);
    assert.equal(payload.scope, 'warrant:read');
    const verified = await w.warrant.authz.verifyAccessToken(tokens.access_token, { resource });
    assert.equal(verified.owner, OWNER);
    assert.equal(verified.agentId, reg.agent_id);

    const listed = await fetch(resource, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${tokens.access_token}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(listed.status, 200);

    // A scope outside its registration is refused; another key is not the client.
    const wider = await clientCredentials(reg.client_id, key, { resource, scope: 'warrant:request' });
    assert.equal(wider.status, 400);
    assert.equal(((await wider.json()) as { error: string }).error, 'invalid_scope');
    const stranger = await clientCredentials(reg.client_id, await keys(), { resource });
    assert.equal(stranger.status, 401);
    assert.equal(((await stranger.json()) as { error: string }).error, 'invalid_client');
  });

  test("an offboarded owner's headless client is no client any more", async () => {
    const owner = 'ci-leaving@example.com';
    const key = await keys();
    const reg = (await (await registerHeadless({ owner, client_name: 'leaving-ci', jwks: { keys: [key.jwk] } })).json()) as { client_id: string };
    const resource = `${w.base}/mcp/warrant`;
    assert.equal((await clientCredentials(reg.client_id, key, { resource })).status, 200);
    await w.warrant.store.db.updateTable('owners').set({ status: 'offboarded', offboarded_at: Date.now() }).where('id', '=', owner).execute();
    const after = await clientCredentials(reg.client_id, key, { resource });
    assert.equal(after.status, 401);
    assert.equal(((await after.json()) as { error: string }).error, 'invalid_client');
    // And no new one for that owner.
    const refused = await registerHeadless({ owner, client_name: 'again', jwks: { keys: [key.jwk] } });
    assert.equal(refused.status, 409);
  });

  test('registration: admin only, keys required and public, and dynamic registration cannot name an owner', async () => {
    const key = await keys();
    assert.equal((await registerHeadless({ owner: OWNER, client_name: 'x', jwks: { keys: [key.jwk] } }, { 'content-type': 'application/json' })).status, 401);
    const none = await registerHeadless({ owner: OWNER, client_name: 'x' });
    assert.equal(none.status, 400);
    const noneBody = (await none.json()) as { code: string; field?: string };
    assert.equal(noneBody.code, 'invalid_request');
    assert.equal(noneBody.field, 'jwks');
    const priv = await generateKeyPair('ES256', { extractable: true });
    const leaked = await registerHeadless({ owner: OWNER, client_name: 'x', jwks: { keys: [await exportJWK(priv.privateKey)] } });
    assert.equal(leaked.status, 400);
    assert.equal(((await leaked.json()) as { field?: string }).field, 'jwks');

    const dcr = await fetch(as.registration_endpoint!, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ application_type: 'native', redirect_uris: ['http://127.0.0.1:5000/cb'], token_endpoint_auth_method: 'none', warrant_owner: OWNER }),
    });
    assert.equal(dcr.status, 400);
    assert.equal(((await dcr.json()) as { error: string }).error, 'invalid_client_metadata');
  });
});
