import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { storeKinds } from '../helpers/stores.ts';
import { authorizationUrl, authorizeAsOwner, discover, insecure, registerPublicClient, startAuthzWarrant, type AuthzWarrant } from './helpers.ts';

// Several Warrant instances on one store are one authorization server: a code issued by one is
// redeemed at another, a refresh token rotated at one is seen by the other, and both sign with
// the same keys. Refresh-token rotation keeps a grace so concurrent refreshes never kill a family.

const REDIRECT = 'http://127.0.0.1:53690/cb';
const OWNER = 'dave@example.com';

async function tokensFor(w: AuthzWarrant, as: oauth.AuthorizationServer, client: oauth.Client, tokenAs = as) {
  const verifier = oauth.generateRandomCodeVerifier();
  const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource: `${w.base}/mcp/shared`, verifier, state: 'st' });
  const { callback } = await authorizeAsOwner(w.base, url, OWNER);
  const params = oauth.validateAuthResponse(as, client, callback, 'st');
  return oauth.processAuthorizationCodeResponse(tokenAs, client, await oauth.authorizationCodeGrantRequest(tokenAs, client, oauth.None(), params, REDIRECT, verifier, insecure));
}

const refresh = (as: oauth.AuthorizationServer, client: oauth.Client, rt: string) => oauth.refreshTokenGrantRequest(as, client, oauth.None(), rt, insecure);

for (const kind of storeKinds) {
  describe(`authz shared by two instances on ${kind.name}`, { skip: kind.skip }, () => {
    let a: AuthzWarrant;
    let b: AuthzWarrant;
    let asA: oauth.AuthorizationServer;
    let asB: oauth.AuthorizationServer;
    before(async () => {
      a = await startAuthzWarrant(kind.name);
      // Behind one public URL, as behind a load balancer; requests go to each instance directly.
      b = await startAuthzWarrant(kind.name, { shared: a.shared, publicUrl: a.base });
      asA = await discover(a.base, a.base);
      asB = { ...asA, token_endpoint: `${b.base}/oauth2/token`, jwks_uri: `${b.base}/oauth2/jwks` };
    });
    after(async () => {
      await b?.cleanup();
      await a?.cleanup();
    });

    test('a code from one instance is redeemed at the other; both publish and sign with the same keys', async () => {
      assert.deepEqual(await (await fetch(`${b.base}/oauth2/jwks`)).json(), await (await fetch(`${a.base}/oauth2/jwks`)).json());
      const client = await registerPublicClient(asA, REDIRECT);
      const tokens = await tokensFor(a, asA, client, asB);
      // Verified with the other instance's JWKS.
      const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(asB.jwks_uri!)), { issuer: a.base, audience: `${a.base}/mcp/shared` });
      assert.equal(payload.sub, OWNER);
      const again = await oauth.processRefreshTokenResponse(asA, client, await refresh(asA, client, tokens.refresh_token!));
      const third = await oauth.processRefreshTokenResponse(asB, client, await refresh(asB, client, again.refresh_token!));
      assert.ok(third.access_token);
    });

    test('rotation with a grace: two refreshes of one token at once both succeed; reuse after a successor was used revokes the family', async () => {
      const client = await registerPublicClient(asA, REDIRECT);
      const tokens = await tokensFor(a, asA, client);
      const rt0 = tokens.refresh_token!;
      // Two sessions of the client refresh the same token at the same instant, on two instances.
      const [r1, r2] = await Promise.all([refresh(asA, client, rt0), refresh(asB, client, rt0)]);
      assert.equal(r1.status, 200);
      assert.equal(r2.status, 200);
      const s1 = await oauth.processRefreshTokenResponse(asA, client, r1);
      const s2 = await oauth.processRefreshTokenResponse(asB, client, r2);
      assert.notEqual(s1.refresh_token, s2.refresh_token);
      // The previous token still works until a successor is used …
      const late = await refresh(asA, client, rt0);
      assert.equal(late.status, 200, 'within the grace');
      await late.body?.cancel();
      // … one session moves on with its successor; the family is alive.
      const s1b = await oauth.processRefreshTokenResponse(asB, client, await refresh(asB, client, s1.refresh_token!));
      assert.ok(s1b.refresh_token);
      // The other session's sibling is of the same generation: still fine.
      const s2b = await oauth.processRefreshTokenResponse(asA, client, await refresh(asA, client, s2.refresh_token!));
      assert.ok(s2b.refresh_token);

      // Now rt0 comes back after its successors were used: reuse (RFC 9700 §4.14.2) revokes everything.
      const reuse = await refresh(asB, client, rt0);
      assert.equal(reuse.status, 400);
      assert.equal(((await reuse.json()) as { error: string }).error, 'invalid_grant');
      for (const rt of [s1b.refresh_token!, s2b.refresh_token!]) {
        const dead = await refresh(asA, client, rt);
        assert.equal(dead.status, 400, 'the family is revoked');
        await dead.body?.cancel();
      }
    });
  });
}
