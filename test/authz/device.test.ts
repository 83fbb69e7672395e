import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { sleep } from '../helpers/lifecycle.ts';
import { Browser, actionOf, csrfOf, discover, insecure, loginCode, startAuthzWarrant, type AuthzWarrant } from './helpers.ts';

// RFC 8628 for agents on machines with no browser: the client asks for a device code, shows the
// user code, polls; the owner opens the verification URI in any browser, types the code, signs in
// with a login code and approves; the next poll gets the tokens.

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const OWNER = 'device-owner@example.com';

const xsrfOf = (html: string) => /name="xsrf" value="([^"]+)"/.exec(html)?.[1];
const formActionOf = (html: string) => /<form id="op\.device\w+Form"[^>]*action="([^"]+)"/.exec(html)?.[1];

async function pollError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof oauth.ResponseBodyError) return err.error;
    throw err;
  }
  return 'none';
}

describe('device authorization grant (RFC 8628)', () => {
  let w: AuthzWarrant;
  let as: oauth.AuthorizationServer;
  before(async () => {
    w = await startAuthzWarrant('sqlite');
    as = await discover(w.base, w.base);
  });
  after(() => w?.cleanup());

  async function registerDeviceClient(): Promise<oauth.Client> {
    const res = await oauth.dynamicClientRegistrationRequest(
      as,
      { application_type: 'native', grant_types: [DEVICE_GRANT, 'refresh_token'], token_endpoint_auth_method: 'none', client_name: 'ci-runner' },
      insecure,
    );
    return (await oauth.processDynamicClientRegistrationResponse(res)) as oauth.Client;
  }

  /** The owner, in a browser: the verification page, the code, the confirmation, login, consent. */
  async function approve(verificationUri: string, userCode: string, opts: { deny?: boolean } = {}): Promise<string> {
    const browser = new Browser();
    let page = await browser.follow(w.base, verificationUri);
    assert.equal(page.res.status, 200);
    let html = await page.res.text();
    assert.equal(page.res.headers.get('x-frame-options'), 'DENY');
    assert.match(page.res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    let posted = await browser.postForm(new URL(formActionOf(html)!, w.base).href, { xsrf: xsrfOf(html)!, user_code: userCode });
    assert.equal(posted.status, 200, 'the confirmation page');
    html = await posted.text();
    assert.ok(html.includes('ci-runner'), 'the confirmation names the client');
    posted = await browser.postForm(new URL(formActionOf(html)!, w.base).href, { xsrf: xsrfOf(html)!, user_code: userCode, confirm: 'yes' });
    assert.ok(posted.status >= 300 && posted.status < 400, `to the login: ${posted.status}`);
    page = await browser.follow(w.base, new URL(posted.headers.get('location')!, w.base).href);
    for (let i = 0; i < 4; i++) {
      html = await page.res.text();
      if (!html.includes('name="csrf"')) return html;
      const csrf = csrfOf(html)!;
      if (html.includes('name="code"')) {
        posted = await browser.postForm(new URL(actionOf(html)!, w.base).href, { csrf, owner: OWNER, code: await loginCode(w.base, OWNER) });
      } else {
        assert.ok(html.includes('nowhere: the device'), 'the consent page says no redirect happens');
        posted = await browser.postForm(new URL(actionOf(html, opts.deny ? 1 : 0)!, w.base).href, { csrf });
      }
      assert.ok(posted.status >= 300 && posted.status < 400, `form: ${posted.status}`);
      page = await browser.follow(w.base, new URL(posted.headers.get('location')!, w.base).href);
    }
    throw new Error('no way out of the device interaction');
  }

  test('a headless client polls (authorization_pending, slow_down), the owner approves over HTTP, the client gets tokens', async () => {
    const client = await registerDeviceClient();
    assert.deepEqual(client.redirect_uris ?? [], []);
    const resource = `${w.base}/mcp/warrant`;
    const started = await oauth.processDeviceAuthorizationResponse(
      as,
      client,
      await oauth.deviceAuthorizationRequest(as, client, oauth.None(), new URLSearchParams({ resource, scope: 'warrant:read warrant:call' }), insecure),
    );
    assert.equal(started.interval, 5);
    assert.ok(started.verification_uri.startsWith(`${w.base}/oauth2/device`));
    assert.match(started.user_code, /^[A-Z]{4}-[A-Z]{4}$/);

    const pollOnce = async () => oauth.processDeviceCodeResponse(as, client, await oauth.deviceCodeGrantRequest(as, client, oauth.None(), started.device_code, insecure));
    assert.equal(await pollError(pollOnce()), 'authorization_pending');
    assert.equal(await pollError(pollOnce()), 'slow_down', 'polled again at once');

    const done = await approve(started.verification_uri, started.user_code);
    assert.match(done, /is allowed/);

    await sleep(5100);
    const tokens = await pollOnce();
    assert.ok(tokens.refresh_token, 'a refresh token: the client registered the grant');
    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(as.jwks_uri!)), { issuer: w.base, audience: resource, typ: 'at+jwt' });
    assert.equal(payload.sub, OWNER);
    assert.equal(payload.client_id, client.client_id);
    assert.deepEqual(String(payload.scope).split(' ').sort(), ['warrant:call', 'warrant:read']);
    const verified = await w.warrant.authz.verifyAccessToken(tokens.access_token, { resource });
    assert.equal(verified.owner, OWNER);
    // The device code works once.
    await sleep(5100);
    assert.equal(await pollError(pollOnce()), 'invalid_grant');
    // And the token is a caller at /mcp/warrant.
    const listed = await fetch(resource, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${tokens.access_token}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(listed.status, 200);
  });

  test('a denied device gets access_denied; a device authorization without a resource is refused', async () => {
    const client = await registerDeviceClient();
    const refused = await oauth.deviceAuthorizationRequest(as, client, oauth.None(), new URLSearchParams({ scope: 'warrant:read' }), insecure);
    assert.equal(refused.status, 400);
    assert.equal(((await refused.json()) as { error: string }).error, 'invalid_target');

    const started = await oauth.processDeviceAuthorizationResponse(
      as,
      client,
      await oauth.deviceAuthorizationRequest(as, client, oauth.None(), new URLSearchParams({ resource: `${w.base}/mcp/warrant`, scope: 'warrant:read' }), insecure),
    );
    await approve(started.verification_uri, started.user_code, { deny: true });
    const error = await pollError(oauth.processDeviceCodeResponse(as, client, await oauth.deviceCodeGrantRequest(as, client, oauth.None(), started.device_code, insecure)));
    assert.equal(error, 'access_denied');
  });

  test('a wrong user code is refused on the page', async () => {
    const browser = new Browser();
    const page = await browser.follow(w.base, `${w.base}/oauth2/device`);
    const html = await page.res.text();
    const posted = await browser.postForm(new URL(formActionOf(html)!, w.base).href, { xsrf: xsrfOf(html)!, user_code: 'BCDF-GHJK' });
    assert.match(await posted.text(), /not valid/);
  });
});
