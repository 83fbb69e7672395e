import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';
import { decodeJwt } from 'jose';
import { storeKinds } from '../helpers/stores.ts';
import { authorizationUrl, authorizeAsOwner, Browser, discover, insecure, registerPublicClient, startAuthzWarrant, type AuthzWarrant } from './helpers.ts';

// Consent once per client and owner, across browser sessions. oidc-provider keeps a grant per
// session, so an owner who had allowed a client was shown the consent page again from every new
// browser; Warrant remembers what the owner allowed while the client's agent lives.

const REDIRECT = 'http://127.0.0.1:53694/callback';
const WEB_REDIRECT = 'https://client.example.com/cb';

const kindOf = (html: string) => (html.includes('name="code"') ? 'login' : html.includes('Allow access?') || /\/consent"/.test(html) ? 'consent' : 'other');

for (const kind of storeKinds) {
  describe(`consent once per client and owner on ${kind.name}`, { skip: kind.skip }, () => {
    let w: AuthzWarrant;
    let as: oauth.AuthorizationServer;
    before(async () => {
      w = await startAuthzWarrant(kind.name);
      as = await discover(w.base, w.base);
    });
    after(() => w?.cleanup());

    /** One authorization as `owner` (a fresh browser unless given), the pages shown, and the access token's claims. */
    async function authorize(client: oauth.Client, owner: string, p: { resource: string; scope?: string; browser?: Browser; redirectUri?: string }) {
      const redirectUri = p.redirectUri ?? REDIRECT;
      const verifier = oauth.generateRandomCodeVerifier();
      const state = oauth.generateRandomState();
      const url = await authorizationUrl(as, client, { redirectUri, resource: p.resource, scope: p.scope, verifier, state });
      const { callback, pages, browser } = await authorizeAsOwner(w.base, url, owner, { browser: p.browser });
      assert.equal(callback.searchParams.get('error'), null, callback.searchParams.get('error_description') ?? '');
      const params = oauth.validateAuthResponse(as, client, callback, state);
      const tokens = await oauth.processAuthorizationCodeResponse(as, client, await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, redirectUri, verifier, insecure));
      return { shown: pages.map(kindOf), claims: decodeJwt(tokens.access_token), browser };
    }

    test('a new browser of an owner who allowed the client shows the sign-in only, and the token holds what was allowed', async () => {
      const owner = `consent-a-${kind.name}@example.com`;
      const client = await registerPublicClient(as, REDIRECT);
      const resource = `${w.base}/mcp/warrant`;
      const first = await authorize(client, owner, { resource, scope: 'warrant:read warrant:call' });
      assert.deepEqual(first.shown, ['login', 'consent']);
      assert.equal(first.claims.scope, 'warrant:read warrant:call');

      // The regression: a fresh cookie jar showed the consent page again.
      const second = await authorize(client, owner, { resource, scope: 'warrant:read warrant:call' });
      assert.deepEqual(second.shown, ['login'], 'no consent page from a new browser');
      assert.equal(second.claims.agent_id, first.claims.agent_id, 'the same agent');
      assert.equal(second.claims.scope, 'warrant:read warrant:call');

      // Less than allowed: no page beyond the sign-in, and the token holds only what is asked.
      const narrower = await authorize(client, owner, { resource, scope: 'warrant:read' });
      assert.deepEqual(narrower.shown, ['login']);
      assert.equal(narrower.claims.scope, 'warrant:read');

      // A native client never completes silently (RFC 8252 §8.6): in a live session, the consent page shows.
      const again = await authorize(client, owner, { resource, scope: 'warrant:read', browser: second.browser });
      assert.deepEqual(again.shown, ['consent']);
    });

    test('a web client with a live session is not asked at all; a new browser signs in only; a consent given in one browser counts in the other', async () => {
      const owner = `consent-web-${kind.name}@example.com`;
      const client = await registerPublicClient(as, WEB_REDIRECT, { application_type: 'web' });
      const resource = `${w.base}/mcp/demo`;
      const first = await authorize(client, owner, { resource, redirectUri: WEB_REDIRECT });
      assert.deepEqual(first.shown, ['login', 'consent']);
      const same = await authorize(client, owner, { resource, redirectUri: WEB_REDIRECT, browser: first.browser });
      assert.deepEqual(same.shown, [], 'the session holds its grant');
      const fresh = await authorize(client, owner, { resource, redirectUri: WEB_REDIRECT });
      assert.deepEqual(fresh.shown, ['login']);
      assert.equal(fresh.claims.scope, 'mcp');

      // A wider consent given in one browser counts in the other's live session too.
      const api = `${w.base}/mcp/warrant`;
      assert.deepEqual((await authorize(client, owner, { resource: api, scope: 'warrant:read', redirectUri: WEB_REDIRECT, browser: first.browser })).shown, ['consent']);
      assert.deepEqual((await authorize(client, owner, { resource: api, scope: 'warrant:read warrant:call', redirectUri: WEB_REDIRECT, browser: fresh.browser })).shown, ['consent']);
      const topped = await authorize(client, owner, { resource: api, scope: 'warrant:read warrant:call', redirectUri: WEB_REDIRECT, browser: first.browser });
      assert.deepEqual(topped.shown, []);
      assert.equal(topped.claims.scope, 'warrant:read warrant:call');
    });

    test('a wider scope or another resource shows the consent page again, naming what is new; then it is remembered too', async () => {
      const owner = `consent-b-${kind.name}@example.com`;
      const client = await registerPublicClient(as, REDIRECT);
      const resource = `${w.base}/mcp/warrant`;
      assert.deepEqual((await authorize(client, owner, { resource, scope: 'warrant:read' })).shown, ['login', 'consent']);

      const verifier = oauth.generateRandomCodeVerifier();
      const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource, scope: 'warrant:read warrant:request', verifier, state: 's' });
      const wider = await authorizeAsOwner(w.base, url, owner);
      assert.deepEqual(wider.pages.map(kindOf), ['login', 'consent'], 'a scope the owner never allowed is asked');
      assert.match(wider.pages[1]!, /warrant:request/);
      const params = oauth.validateAuthResponse(as, client, wider.callback, 's');
      const tokens = await oauth.processAuthorizationCodeResponse(as, client, await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, insecure));
      assert.equal(decodeJwt(tokens.access_token).scope, 'warrant:read warrant:request');

      // Both consents are remembered.
      const after = await authorize(client, owner, { resource, scope: 'warrant:read warrant:request' });
      assert.deepEqual(after.shown, ['login']);
      assert.equal(after.claims.scope, 'warrant:read warrant:request');

      // Consent to one resource is no consent to another (RFC 8707).
      const other = await authorize(client, owner, { resource: `${w.base}/mcp/demo` });
      assert.deepEqual(other.shown, ['login', 'consent']);
      assert.equal(other.claims.aud, `${w.base}/mcp/demo`);
    });

    test('after the agent is revoked, the owner is asked again, and a new agent holds only the new consent', async () => {
      const owner = `consent-c-${kind.name}@example.com`;
      const client = await registerPublicClient(as, REDIRECT);
      const resource = `${w.base}/mcp/warrant`;
      const first = await authorize(client, owner, { resource, scope: 'warrant:read warrant:call' });
      assert.deepEqual(first.shown, ['login', 'consent']);
      await w.warrant.agents.revoke(String(first.claims.agent_id));

      const renewed = await authorize(client, owner, { resource, scope: 'warrant:read' });
      assert.deepEqual(renewed.shown, ['login', 'consent'], 'a revoked agent remembers nothing');
      assert.notEqual(renewed.claims.agent_id, first.claims.agent_id);

      // What the revoked agent was allowed is not carried over to the new one.
      const verifier = oauth.generateRandomCodeVerifier();
      const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource, scope: 'warrant:read warrant:call', verifier, state: 's' });
      const wider = await authorizeAsOwner(w.base, url, owner);
      assert.deepEqual(wider.pages.map(kindOf), ['login', 'consent']);
    });
  });
}
