import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { sleep } from '../helpers/lifecycle.ts';
import { authorizationUrl, authorizeAsOwner, discover, insecure, registerPublicClient, startAuthzWarrant, type AuthzWarrant } from './helpers.ts';

// RFC 7662 introspection of Warrant's JWT access tokens. oidc-provider answered
// `400 unsupported_token_type` for every one of them (Warrant issues only JWT access tokens), so no
// client could ask whether its token was still good; refresh tokens keep oidc-provider's own path.

const OWNER = 'intro-owner@example.com';
const REDIRECT = 'http://127.0.0.1:53697/callback';
const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

interface Caller {
  client: oauth.Client;
  auth: oauth.ClientAuth;
}

interface Introspection {
  active: boolean;
  [k: string]: unknown;
}

describe('introspection of JWT access tokens (RFC 7662)', () => {
  let w: AuthzWarrant;
  let as: oauth.AuthorizationServer;
  let mcp: string;
  let owner: Caller & { accessToken: string; refreshToken: string };
  let headless: Caller & { agentId: string };

  const introspect = async (caller: Caller, token: string): Promise<Introspection> => {
    const res = await oauth.introspectionRequest(as, caller.client, caller.auth, token, insecure);
    assert.equal(res.status, 200, await res.clone().text());
    assert.match(res.headers.get('cache-control') ?? '', /no-store/);
    return (await res.json()) as Introspection;
  };

  before(async () => {
    w = await startAuthzWarrant('sqlite');
    as = await discover(w.base, w.base);
    mcp = `${w.base}/mcp/warrant`;

    const client = await registerPublicClient(as, REDIRECT);
    const verifier = oauth.generateRandomCodeVerifier();
    const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource: mcp, scope: 'warrant:read warrant:call', verifier, state: 's' });
    const { callback } = await authorizeAsOwner(w.base, url, OWNER);
    const params = oauth.validateAuthResponse(as, client, callback, 's');
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, insecure));
    owner = { client, auth: oauth.None(), accessToken: tokens.access_token, refreshToken: tokens.refresh_token! };

    // A sub-agent: a private_key_jwt client an admin bound to the same owner.
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const res = await fetch(`${w.base}/v1/authz/clients`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ owner: OWNER, client_name: 'intro sub-agent', jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] } }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    const reg = (await res.json()) as { client_id: string; agent_id: string };
    headless = { client: { client_id: reg.client_id, token_endpoint_auth_method: 'private_key_jwt' }, auth: oauth.PrivateKeyJwt({ key: privateKey, kid: 'k1' }), agentId: reg.agent_id };
  });
  after(() => w?.cleanup());

  test("an authorization-code token is active for its own client, with the token's claims", async () => {
    const claims = decodeJwt(owner.accessToken);
    const body = await introspect(owner, owner.accessToken);
    assert.deepEqual(body, {
      active: true,
      scope: 'warrant:read warrant:call',
      client_id: owner.client.client_id,
      sub: OWNER,
      aud: mcp,
      iss: w.base,
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      token_type: 'Bearer',
      agent_id: claims.agent_id,
    });
    // The refresh token (opaque) keeps oidc-provider's path.
    const refresh = await introspect(owner, owner.refreshToken);
    assert.equal(refresh.active, true);
    assert.equal(refresh.client_id, owner.client.client_id);
  });

  test('an exchanged token (RFC 8693) is active for the client that exchanged it, act included; any other client learns nothing', async () => {
    const body = new URLSearchParams({ subject_token: owner.accessToken, subject_token_type: ACCESS_TOKEN, resource: mcp, scope: 'warrant:read' });
    const res = await oauth.genericTokenEndpointRequest(as, headless.client, headless.auth, TE, body, insecure);
    assert.equal(res.status, 200, await res.clone().text());
    const exchanged = ((await res.json()) as { access_token: string }).access_token;

    const seen = await introspect(headless, exchanged);
    assert.equal(seen.active, true);
    assert.equal(seen.scope, 'warrant:read');
    assert.equal(seen.client_id, headless.client.client_id);
    assert.equal(seen.sub, OWNER);
    assert.equal(seen.aud, mcp);
    assert.equal(seen.token_type, 'Bearer');
    assert.equal(seen.agent_id, decodeJwt(owner.accessToken).agent_id);
    assert.deepEqual(seen.act, decodeJwt(exchanged).act);
    assert.equal((seen.act as { client_id?: string }).client_id, headless.client.client_id);

    // RFC 7662 §4: not the token's client, not told anything about it.
    assert.deepEqual(await introspect(owner, exchanged), { active: false });
    assert.deepEqual(await introspect(headless, owner.accessToken), { active: false });
    const stranger = await registerPublicClient(as, REDIRECT);
    assert.deepEqual(await introspect({ client: stranger, auth: oauth.None() }, owner.accessToken), { active: false });
  });

  test('anything that is not a valid token of Warrant is inactive', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const c = decodeJwt(owner.accessToken);
    const forged = await new SignJWT({ ...c }).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'x' }).sign(privateKey);
    assert.deepEqual(await introspect(owner, forged), { active: false }, 'signed by another key');
    const [h, , s] = owner.accessToken.split('.');
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...c, scope: 'warrant:read warrant:call warrant:request' })).toString('base64url')}.${s}`;
    assert.deepEqual(await introspect(owner, tampered), { active: false }, 'claims changed');
    assert.deepEqual(await introspect(owner, 'not-a-token'), { active: false });
  });

  test('no client authentication is 401 invalid_client, JWT or not', async () => {
    for (const token of [owner.accessToken, owner.refreshToken]) {
      const res = await fetch(as.introspection_endpoint!, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }).toString() });
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as { error: string }).error, 'invalid_client');
    }
    // A confidential client with a wrong secret.
    const reg = await oauth.dynamicClientRegistrationRequest(as, { application_type: 'web', redirect_uris: ['https://client.example.com/cb'], client_name: 'confidential' }, insecure);
    const confidential = (await oauth.processDynamicClientRegistrationResponse(reg)) as oauth.Client;
    assert.ok(confidential.client_secret);
    const res = await oauth.introspectionRequest(as, confidential, oauth.ClientSecretBasic('wrong'), owner.accessToken, insecure);
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: string }).error, 'invalid_client');
    // The right secret: authenticated, not the token's client, whether the token is a JWT or a refresh token.
    const authenticated = { client: confidential, auth: oauth.ClientSecretBasic(String(confidential.client_secret)) };
    assert.deepEqual(await introspect(authenticated, owner.accessToken), { active: false });
    assert.deepEqual(await introspect(authenticated, owner.refreshToken), { active: false });
  });

  test("after the agent is revoked, its tokens and the tokens exchanged from them are inactive within the verifier's bound", async () => {
    const body = new URLSearchParams({ subject_token: owner.accessToken, subject_token_type: ACCESS_TOKEN, resource: mcp, scope: 'warrant:read' });
    const res = await oauth.genericTokenEndpointRequest(as, headless.client, headless.auth, TE, body, insecure);
    const exchanged = ((await res.json()) as { access_token: string }).access_token;
    assert.equal((await introspect(owner, owner.accessToken)).active, true);
    assert.equal((await introspect(headless, exchanged)).active, true);

    await w.warrant.agents.revoke(String(decodeJwt(owner.accessToken).agent_id));
    const deadline = Date.now() + 3000;
    let last: [Introspection, Introspection] | undefined;
    while (Date.now() < deadline) {
      last = [await introspect(owner, owner.accessToken), await introspect(headless, exchanged)];
      if (!last[0].active && !last[1].active) break;
      await sleep(100);
    }
    assert.deepEqual(last, [{ active: false }, { active: false }], 'inactive within 3 s (the verifier reads agents at most 1 s old)');
    assert.equal((await introspect(owner, owner.refreshToken)).active, false, 'the refresh token too');
  });
});
