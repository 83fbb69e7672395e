import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { storeKinds } from '../helpers/stores.ts';
import {
  authorizationUrl,
  authorizeAsOwner,
  Browser,
  csrfOf,
  actionOf,
  discover,
  insecure,
  registerPublicClient,
  startAuthzWarrant,
  type AuthzWarrant,
} from './helpers.ts';

// Warrant's own authorization server, end to end with oauth4webapi as the client: discovery,
// registration, authorization code + PKCE + resource → an RFC 9068 JWT for that one resource.

const REDIRECT = 'http://127.0.0.1:53682/callback';
const OWNER = 'alice@example.com';

for (const kind of storeKinds) {
  describe(`authz on ${kind.name}`, { skip: kind.skip }, () => {
    let w: AuthzWarrant;
    let as: oauth.AuthorizationServer;
    before(async () => {
      w = await startAuthzWarrant(kind.name);
      as = await discover(w.base, w.base);
    });
    after(() => w?.cleanup());

    test('publishes the same metadata at RFC 8414 and OpenID discovery, under /oauth2', async () => {
      const rfc8414 = await (await fetch(`${w.base}/.well-known/oauth-authorization-server`)).json();
      const oidc = await (await fetch(`${w.base}/.well-known/openid-configuration`)).json();
      assert.deepEqual(rfc8414, oidc);
      assert.equal(as.issuer, w.base);
      assert.equal(as.authorization_endpoint, `${w.base}/oauth2/authorize`);
      assert.equal(as.token_endpoint, `${w.base}/oauth2/token`);
      assert.equal(as.registration_endpoint, `${w.base}/oauth2/register`);
      assert.equal(as.jwks_uri, `${w.base}/oauth2/jwks`);
      assert.deepEqual(as.code_challenge_methods_supported, ['S256']);
      assert.equal(as.authorization_response_iss_parameter_supported, true);
      const jwks = (await (await fetch(as.jwks_uri!)).json()) as { keys: Record<string, unknown>[] };
      assert.ok(jwks.keys.length >= 1);
      for (const k of jwks.keys) assert.equal(k.d, undefined, 'no private part published');
    });

    test('dynamic registration refuses what it must (RFC 7591 §3.2.2)', async () => {
      const register = (metadata: Record<string, unknown>) =>
        fetch(as.registration_endpoint!, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(metadata) });
      const cases: [Record<string, unknown>, string][] = [
        [{ redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' }, 'invalid_client_metadata'], // no application_type
        [{ application_type: 'web', redirect_uris: ['http://client.example.com/cb'] }, 'invalid_redirect_uri'], // plain http off loopback
        [{ application_type: 'web', redirect_uris: ['https://client.example.com/cb#frag'] }, 'invalid_redirect_uri'],
        [{ application_type: 'native', redirect_uris: ['http://client.example.com/cb'] }, 'invalid_redirect_uri'],
        [{ application_type: 'native', redirect_uris: [REDIRECT], grant_types: ['implicit'], response_types: ['id_token'] }, 'invalid_client_metadata'],
        [{ application_type: 'native', redirect_uris: [REDIRECT], grant_types: ['password'] }, 'invalid_client_metadata'],
        [{ application_type: 'native', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'client_secret_jwt' }, 'invalid_client_metadata'],
        [{ application_type: 'native' }, 'invalid_redirect_uri'],
      ];
      for (const [metadata, error] of cases) {
        const res = await register(metadata);
        const body = (await res.json()) as { error: string };
        assert.equal(res.status, 400, JSON.stringify(metadata));
        assert.equal(body.error, error, JSON.stringify(metadata));
      }
      const ok = await registerPublicClient(as, REDIRECT);
      assert.match(ok.client_id, /^wcl_/);
      assert.equal(ok.client_secret, undefined);
    });

    test('authorization code + PKCE + resource gives a JWT for exactly that resource, and a refresh token', async () => {
      const client = await registerPublicClient(as, REDIRECT);
      const resource = `${w.base}/mcp/demo`;
      const verifier = oauth.generateRandomCodeVerifier();
      const state = oauth.generateRandomState();
      const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource, verifier, state, scope: 'mcp' });
      const { callback } = await authorizeAsOwner(w.base, url, OWNER);
      assert.equal(callback.origin + callback.pathname, REDIRECT);
      // RFC 9207: iss on the authorization response; oauth4webapi checks it against the metadata.
      assert.equal(callback.searchParams.get('iss'), w.base);
      const params = oauth.validateAuthResponse(as, client, callback, state);
      const tokenRes = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, insecure);
      const tokens = await oauth.processAuthorizationCodeResponse(as, client, tokenRes);
      assert.equal(tokens.token_type.toLowerCase(), 'bearer');
      assert.ok(tokens.refresh_token, 'a refresh token without offline_access');

      assert.equal(decodeProtectedHeader(tokens.access_token).typ, 'at+jwt');
      const jwks = createRemoteJWKSet(new URL(as.jwks_uri!));
      const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: w.base, audience: resource, typ: 'at+jwt' });
      assert.equal(payload.aud, resource, 'one audience, not a list');
      assert.equal(payload.sub, OWNER);
      assert.equal(payload.client_id, client.client_id);
      assert.equal(payload.scope, 'mcp');
      assert.match(String(payload.agent_id), /^agt_/);

      // The client is an agent of the owner who consented.
      const agent = await w.warrant.agents.get(String(payload.agent_id));
      assert.equal(agent.owner, OWNER);
      assert.equal(agent.status, 'active');
      // It holds no connection grant, and is no orphan for that: it exists for its registration.
      assert.ok(!(await w.warrant.agents.orphaned({ owner: OWNER })).some((a) => a.id === agent.id), 'an OAuth client agent is not orphaned for having no connection');

      const refreshed = await oauth.processRefreshTokenResponse(
        as,
        client,
        await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token!, insecure),
      );
      assert.ok(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'rotated');
      const again = await jwtVerify(refreshed.access_token, jwks, { issuer: w.base, audience: resource, typ: 'at+jwt' });
      assert.equal(again.payload.aud, resource);

      // Nothing the client holds is stored as is.
      const { sql } = await import('kysely');
      const keys = (await sql<{ key: string }>`select key from authz_models`.execute(w.warrant.store.db)).rows.map((r) => r.key);
      for (const secret of [tokens.refresh_token!, refreshed.refresh_token!, params.get('code')!]) {
        assert.ok(!keys.includes(secret), 'a bearer secret is never a key');
      }
      const sealed = (await sql<{ ciphertext: string }>`select ciphertext from secrets where scope = 'authz'`.execute(w.warrant.store.db)).rows;
      assert.ok(sealed.length > 0);
      for (const r of sealed) assert.ok(!r.ciphertext.includes(client.client_id), 'payloads are sealed');
    });

    test('an authorization without a resource, or for a resource Warrant does not serve, is refused', async () => {
      const client = await registerPublicClient(as, REDIRECT);
      for (const resource of [undefined, 'https://elsewhere.example.com/mcp', `${w.base}/oauth2/token`]) {
        const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource, verifier: oauth.generateRandomCodeVerifier(), state: 's' });
        const res = await new Browser().request(url.href);
        assert.equal(res.status, 303, String(resource));
        const back = new URL(res.headers.get('location')!);
        assert.equal(back.searchParams.get('error'), 'invalid_target', String(resource));
        assert.equal(back.searchParams.get('iss'), w.base, 'iss on error responses too');
      }
      assert.equal(w.warrant.authz.isKnownResource(`${w.base}/v1`), true);
      assert.equal(w.warrant.authz.isKnownResource(`${w.base}/mcp/demo`), true);
      assert.equal(w.warrant.authz.isKnownResource(`${w.base}/mcp/warrant`), true);
      assert.equal(w.warrant.authz.isKnownResource(`${w.base}/mcp/x`), false, 'no token for an MCP endpoint nothing serves');
      assert.equal(w.warrant.authz.isKnownResource(`${w.base}/mcp/x#f`), false);
      assert.equal(w.warrant.authz.isKnownResource(`${w.base}/v2`), false);
    });

    test('plain PKCE and a redirect URI not registered exactly are refused', async () => {
      const client = await registerPublicClient(as, REDIRECT);
      const resource = `${w.base}/mcp/demo`;
      const plain = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource, verifier: oauth.generateRandomCodeVerifier(), state: 's', method: 'plain' });
      const res = await new Browser().request(plain.href);
      assert.equal(res.status, 303);
      const back = new URL(res.headers.get('location')!);
      assert.equal(back.searchParams.get('error'), 'invalid_request');
      assert.match(back.searchParams.get('error_description') ?? '', /code_challenge_method/);

      for (const wrong of [`${REDIRECT}/x`, `${REDIRECT}?a=1`, 'http://127.0.0.1:53683/callback']) {
        const url = await authorizationUrl(as, client, { redirectUri: wrong, resource, verifier: oauth.generateRandomCodeVerifier(), state: 's' });
        const r = await new Browser().request(url.href);
        assert.equal(r.status, 400, wrong);
        assert.equal(r.headers.get('location'), null, 'never redirected to an unregistered URI');
        assert.match(await r.text(), /redirect_uri/);
      }
    });

    test('the consent page cannot be framed and refuses a form without its CSRF token', async () => {
      const client = await registerPublicClient(as, REDIRECT);
      const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource: `${w.base}/mcp/demo`, verifier: oauth.generateRandomCodeVerifier(), state: 's' });
      const browser = new Browser();
      const { res, url: pageUrl } = await browser.follow(w.base, url.href);
      assert.equal(res.status, 200);
      assert.match(pageUrl, /\/oauth2\/interaction\//);
      assert.equal(res.headers.get('x-frame-options'), 'DENY');
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, /frame-ancestors 'none'/);
      assert.doesNotMatch(csp, /script-src|unsafe-inline/);
      const html = await res.text();
      assert.doesNotMatch(html, /<script/i);
      const action = new URL(actionOf(html)!, w.base).href;
      const { loginCode } = await import('./helpers.ts');
      const code = await loginCode(w.base, OWNER);
      const forged = await browser.postForm(action, { owner: OWNER, code });
      assert.equal(forged.status, 403);
      const wrong = await browser.postForm(action, { owner: OWNER, code, csrf: csrfOf(html)!.slice(1) + 'A' });
      assert.equal(wrong.status, 403);
      // The code was not spent by the refused forms.
      const ok = await browser.postForm(action, { owner: OWNER, code, csrf: csrfOf(html)! });
      assert.equal(ok.status, 303);

      // The consent page names the client, its redirect URI, the scopes and the resource.
      const consent = await browser.follow(w.base, new URL(ok.headers.get('location')!, w.base).href);
      const consentHtml = await consent.res.text();
      assert.equal(consent.res.headers.get('x-frame-options'), 'DENY');
      assert.match(consentHtml, /Test MCP client/);
      assert.match(consentHtml, /client\.example\.com/);
      assert.ok(consentHtml.includes(REDIRECT));
      assert.ok(consentHtml.includes(`${w.base}/mcp/demo`));
      const noCsrf = await browser.postForm(new URL(actionOf(consentHtml)!, w.base).href, {});
      assert.equal(noCsrf.status, 403);
    });

    test('a wrong login code is refused, and a code works once', async () => {
      const client = await registerPublicClient(as, REDIRECT);
      const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource: `${w.base}/v1`, verifier: oauth.generateRandomCodeVerifier(), state: 's' });
      const browser = new Browser();
      const { res } = await browser.follow(w.base, url.href);
      const html = await res.text();
      const action = new URL(actionOf(html)!, w.base).href;
      const bad = await browser.postForm(action, { owner: OWNER, code: 'AAAAA-AAAAA', csrf: csrfOf(html)! });
      assert.equal(bad.status, 400);
      const { loginCode } = await import('./helpers.ts');
      const code = await loginCode(w.base, OWNER);
      assert.equal(await w.warrant.authz.loginCodes.redeem('bob@example.com', code), false, 'bound to its owner');
      assert.equal(await w.warrant.authz.loginCodes.redeem(OWNER, code), true);
      assert.equal(await w.warrant.authz.loginCodes.redeem(OWNER, code), false, 'single use');
    });

    test("a revoked agent's client is refused at the token endpoint and by introspection", async () => {
      const owner = 'carol@example.com';
      const client = await registerPublicClient(as, REDIRECT);
      const resource = `${w.base}/v1`;
      const verifier = oauth.generateRandomCodeVerifier();
      const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource, verifier, state: 's' });
      const { callback } = await authorizeAsOwner(w.base, url, owner);
      assert.equal(callback.searchParams.get('error'), null, callback.searchParams.get('error_description') ?? '');
      const params = oauth.validateAuthResponse(as, client, callback, 's');
      const tokens = await oauth.processAuthorizationCodeResponse(as, client, await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, insecure));
      const introspect = async () =>
        (await (await oauth.introspectionRequest(as, client, oauth.None(), tokens.refresh_token!, insecure)).json()) as { active: boolean; sub?: string };
      assert.equal((await introspect()).active, true);
      const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(as.jwks_uri!)), { audience: resource });

      await w.warrant.agents.revoke(String(payload.agent_id));
      assert.equal((await introspect()).active, false);
      const res = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token!, insecure);
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { error: string }).error, 'invalid_grant');
    });
  });
}
