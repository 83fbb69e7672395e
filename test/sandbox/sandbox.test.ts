import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import * as oauth from 'oauth4webapi';
import { formatProviderYaml, startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { parseProviderText, providerSchema } from '../../src/providers/index.ts';

// The sandbox against oauth4webapi, the client Warrant itself uses: a real authorization server
// on port 0, so every assertion here is about protocol behaviour, not about a mock.

const insecure = { [oauth.allowInsecureRequests]: true } as const;
const redirectUri = 'http://127.0.0.1:7070/oauth/callback';
const client: oauth.Client = { client_id: 'warrant' };
const clientAuth = oauth.ClientSecretBasic('warrant-sandbox-secret');

let sb: Sandbox;
let as: oauth.AuthorizationServer;

before(async () => {
  sb = await startSandbox({ accessTokenTtl: 5 });
  const issuer = new URL(sb.issuer);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
});
after(() => sb.close());

interface Connected {
  access_token: string;
  refresh_token: string;
  expires_in: number | undefined;
  issuedAt: number;
  callback: URL;
}

/** Authorization code + PKCE S256 through sandbox.authorize, then the code exchange. */
async function connect(scope = 'items:read offline_access', extra: Record<string, string> = {}): Promise<Connected> {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const callback = new URL(
    await sb.authorize({
      redirect_uri: redirectUri,
      scope,
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      ...extra,
    }),
  );
  const params = oauth.validateAuthResponse(as, client, callback, state);
  const issuedAt = Date.now();
  const res = await oauth.authorizationCodeGrantRequest(as, client, clientAuth, params, redirectUri, verifier, insecure);
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, res);
  assert.ok(tokens.refresh_token, 'a refresh token is issued for offline_access');
  return { access_token: tokens.access_token, refresh_token: tokens.refresh_token, expires_in: tokens.expires_in, issuedAt, callback };
}

async function refresh(refreshToken: string): Promise<oauth.TokenEndpointResponse> {
  const res = await oauth.refreshTokenGrantRequest(as, client, clientAuth, refreshToken, insecure);
  return oauth.processRefreshTokenResponse(as, client, res);
}

/** The OAuth error code a refresh is refused with. */
async function refreshError(refreshToken: string): Promise<string> {
  try {
    await refresh(refreshToken);
  } catch (err) {
    if (err instanceof oauth.ResponseBodyError) return err.error;
    throw err;
  }
  assert.fail('the refresh was expected to fail');
}

function api(path: string, token: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${sb.apiBaseUrl}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
}

async function introspect(token: string): Promise<oauth.IntrospectionResponse> {
  const res = await oauth.introspectionRequest(as, client, clientAuth, token, insecure);
  return oauth.processIntrospectionResponse(as, client, res);
}

// Shared by the first tests: one grant followed through its whole life, and a spare one whose
// access token expires at the same time but whose grant is never revoked.
let first: Connected;
let spare: Connected;
let rotated: oauth.TokenEndpointResponse;

test('authorization code + PKCE S256 issues a 5-second access token and a refresh token that work', async () => {
  [first, spare] = await Promise.all([connect(), connect()]);
  assert.equal(first.expires_in, 5);
  assert.equal(first.callback.searchParams.get('iss'), sb.issuer, 'RFC 9207 iss on the callback');
  const res = await api('/items', first.access_token);
  assert.equal(res.status, 200);
  assert.ok(Array.isArray(((await res.json()) as { items: unknown[] }).items));
  const who = (await (await api('/whoami', first.access_token)).json()) as { sub: string; client_id: string; scope: string };
  assert.deepEqual(who, { sub: 'sandbox-user', client_id: 'warrant', scope: 'items:read offline_access' });
});

test('the API refuses the access token with 401 invalid_token once it expired', async () => {
  await sleep(Math.max(0, Math.max(first.issuedAt, spare.issuedAt) + 5_500 - Date.now()));
  const res = await api('/items', first.access_token);
  assert.equal(res.status, 401);
  assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer .*error="invalid_token"/);
});

test('refresh rotates: a new access token and a new refresh token, both working', async () => {
  rotated = await refresh(first.refresh_token);
  assert.ok(rotated.refresh_token);
  assert.notEqual(rotated.refresh_token, first.refresh_token);
  assert.notEqual(rotated.access_token, first.access_token);
  assert.equal((await api('/items', rotated.access_token)).status, 200);
});

test('reusing a consumed refresh token is refused and kills the whole grant', async () => {
  // RFC 9700 §4.14.2: reuse of a rotated refresh token revokes the grant, so the newest token dies too.
  const before = sb.stats().reuseDetected;
  assert.equal(await refreshError(first.refresh_token), 'invalid_grant');
  assert.equal(sb.stats().reuseDetected, before + 1);
  assert.equal(await refreshError(rotated.refresh_token!), 'invalid_grant');
  assert.equal((await api('/items', rotated.access_token)).status, 401);
});

test('concurrent use of one rotating refresh token: exactly one wins, and the reuse burns the grant', async () => {
  // The race DESIGN.md guards against with single-flight: several instances refreshing at once.
  const c = await connect();
  const answers = await Promise.all(
    [1, 2, 3].map(async () => (await oauth.refreshTokenGrantRequest(as, client, clientAuth, c.refresh_token, insecure)).status),
  );
  assert.deepEqual(answers.sort(), [200, 400, 400]);
  assert.equal((await api('/items', c.access_token)).status, 401, 'the grant is revoked');
});

test('client_credentials issues a token the API accepts', async () => {
  const res = await oauth.clientCredentialsGrantRequest(as, client, clientAuth, { scope: 'items:read' }, insecure);
  const tokens = await oauth.processClientCredentialsResponse(as, client, res);
  assert.equal(tokens.expires_in, 5);
  assert.equal((await api('/items', tokens.access_token)).status, 200);
  const who = (await (await api('/whoami', tokens.access_token)).json()) as { sub: string };
  assert.equal(who.sub, 'warrant');
});

test('RFC 7009 revocation of a refresh token kills it, and introspection says active:false', async () => {
  const c = await connect();
  assert.equal((await introspect(c.refresh_token)).active, true);
  await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, clientAuth, c.refresh_token, insecure));
  assert.equal(await refreshError(c.refresh_token), 'invalid_grant');
  assert.equal((await introspect(c.refresh_token)).active, false);
  assert.equal((await introspect(c.access_token)).active, false, 'the grant went with it');
  assert.equal((await api('/items', c.access_token)).status, 401);
});

test('revokeGrantOf kills the grant behind a token: refresh invalid_grant, API 401', async () => {
  const c = await connect();
  await sb.revokeGrantOf(c.access_token);
  assert.equal((await api('/items', c.access_token)).status, 401);
  assert.equal(await refreshError(c.refresh_token), 'invalid_grant');
  await assert.rejects(sb.revokeGrantOf('no-such-token'));
});

test('token endpoint fault: 503 for N requests, then the IdP recovers', async () => {
  const c = await connect();
  sb.resetStats();
  sb.setFaults({ tokenEndpoint: { status: 503, count: 2, retryAfter: 1 } });
  for (let i = 0; i < 2; i++) {
    const res = await oauth.refreshTokenGrantRequest(as, client, clientAuth, c.refresh_token, insecure);
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.deepEqual(((await res.json()) as { error: string }).error, 'temporarily_unavailable');
  }
  const ok = await refresh(c.refresh_token);
  assert.ok(ok.access_token);
  assert.deepEqual(
    { requests: sb.stats().refreshRequests, failures: sb.stats().refreshFailures },
    { requests: 3, failures: 2 },
  );
  sb.setFaults({});
});

test('token endpoint delay holds the answer back', async () => {
  sb.setFaults({ tokenEndpoint: { delayMs: 300, count: 1 } });
  const started = Date.now();
  const res = await oauth.clientCredentialsGrantRequest(as, client, clientAuth, { scope: 'items:read' }, insecure);
  await oauth.processClientCredentialsResponse(as, client, res);
  assert.ok(Date.now() - started >= 290);
  sb.setFaults({});
});

test('body-level auth failure: an expired token answers 200 {ok:false,error:"token_expired"}', async () => {
  sb.setFaults({ api: { bodyLevelAuthFailure: true } });
  const res = await api('/items', spare.access_token);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: false, error: 'token_expired' });
  assert.deepEqual(await (await api('/items', first.access_token)).json(), { ok: false, error: 'invalid_auth' }, 'revoked');
  sb.setFaults({});
  assert.equal((await api('/items', spare.access_token)).status, 401);
});

test('API status fault: 503 with Retry-After for `count` requests, then normal answers', async () => {
  const c = await connect();
  sb.setFaults({ api: { status: 503, retryAfter: 2, count: 1 } });
  const failed = await api('/items', c.access_token);
  assert.equal(failed.status, 503);
  assert.equal(failed.headers.get('retry-after'), '2');
  assert.equal((await api('/items', c.access_token)).status, 200);
  sb.setFaults({});
});

test('a missing scope is 403 with WWW-Authenticate insufficient_scope and a JSON body', async () => {
  const c = await connect('items:read offline_access');
  const res = await api('/items', c.access_token, { method: 'POST', body: JSON.stringify({ name: 'x' }) });
  assert.equal(res.status, 403);
  assert.match(res.headers.get('www-authenticate') ?? '', /error="insufficient_scope".*scope="items:write"/);
  assert.deepEqual(((await res.json()) as { error: string; scope: string }).scope, 'items:write');
});

test('items:write creates, updates and deletes items', async () => {
  const c = await connect('items:read items:write offline_access');
  const created = await api('/items', c.access_token, { method: 'POST', body: JSON.stringify({ name: 'report' }) });
  assert.equal(created.status, 201);
  const { id } = (await created.json()) as { id: string };
  const patched = await api(`/items/${id}`, c.access_token, { method: 'PATCH', body: JSON.stringify({ name: 'final report' }) });
  assert.equal(((await patched.json()) as { name: string }).name, 'final report');
  assert.equal((await api(`/items/${id}`, c.access_token, { method: 'DELETE' })).status, 204);
  assert.equal((await api(`/items/${id}`, c.access_token)).status, 404);
});

test('a resource indicator (RFC 8707) for the API gives a token bound to it', async () => {
  const c = await connect('items:read offline_access', { resource: sb.apiBaseUrl });
  assert.equal((await api('/items', c.access_token)).status, 200);
  const again = await refresh(c.refresh_token);
  assert.equal((await api('/items', again.access_token)).status, 200);
  assert.equal((await introspect(again.access_token)).aud, sb.apiBaseUrl);
});

test('setAccessTokenTtl applies to tokens issued afterwards', async () => {
  const c = await connect();
  sb.setAccessTokenTtl(2);
  try {
    assert.equal((await refresh(c.refresh_token)).expires_in, 2);
  } finally {
    sb.setAccessTokenTtl(5);
  }
});

test('providerDefinition() passes the provider schema, also as YAML', () => {
  const def = providerSchema.parse(sb.providerDefinition('acme-sandbox'));
  assert.equal(def.id, 'acme-sandbox');
  assert.equal(def.environments.production?.token_url, as.token_endpoint);
  assert.equal(def.environments.production?.issuer, sb.issuer);
  assert.equal(def.refresh_token_rotation, true);
  assert.deepEqual(def.default_scopes, ['offline_access']);
  assert.equal(parseProviderText(formatProviderYaml(def), 'sandbox.yaml').environments.production?.api_base_url, sb.apiBaseUrl);
});

test('stats count refreshes exactly', async () => {
  const c = await connect();
  sb.resetStats();
  let rt = c.refresh_token;
  for (let i = 0; i < 3; i++) rt = (await refresh(rt)).refresh_token!;
  assert.equal(await refreshError('not-a-refresh-token'), 'invalid_grant');
  const s = sb.stats();
  assert.deepEqual(
    { tokenRequests: s.tokenRequests, refreshRequests: s.refreshRequests, refreshFailures: s.refreshFailures, reuseDetected: s.reuseDetected },
    { tokenRequests: 4, refreshRequests: 4, refreshFailures: 1, reuseDetected: 0 },
  );
});

test('the HTTP control endpoint sets faults and reads stats', async () => {
  const put = await fetch(`${sb.controlUrl}/faults`, { method: 'PUT', body: JSON.stringify({ tokenEndpoint: { status: 502, count: 1 } }) });
  assert.equal(put.status, 200);
  const res = await oauth.clientCredentialsGrantRequest(as, client, clientAuth, { scope: 'items:read' }, insecure);
  assert.equal(res.status, 502);
  assert.equal((await fetch(`${sb.controlUrl}/faults`, { method: 'PUT', body: '{"api":{"status":"x"}}' })).status, 400);
  assert.equal((await fetch(`${sb.controlUrl}/faults`, { method: 'DELETE' })).status, 204);
  const stats = (await (await fetch(`${sb.controlUrl}/stats`)).json()) as { clientCredentialsRequests: number };
  assert.equal(stats.clientCredentialsRequests, sb.stats().clientCredentialsRequests);
});

/** The authorization URL a browser would be sent to. */
async function authorizationUrl(target: Sandbox): Promise<URL> {
  const url = new URL(target.providerDefinition().environments.production!.authorization_url!);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: 'warrant',
    redirect_uri: redirectUri,
    scope: 'items:read',
    state: 's',
    code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
    code_challenge_method: 'S256',
  }).toString();
  return url;
}

test('a browser is approved on arrival; with autoApprove off it gets an Approve page', async () => {
  // Browser-like: plain GETs, cookies carried by hand (only the latest value of each name kept).
  const cookies = new Map<string, string>();
  let url = await authorizationUrl(sb);
  for (let hop = 0; hop < 5 && url.origin === new URL(sb.issuer).origin; hop++) {
    const res = await fetch(url, { redirect: 'manual', headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } });
    assert.equal(res.status, 303);
    for (const c of res.headers.getSetCookie()) {
      const [pair = ''] = c.split(';');
      const eq = pair.indexOf('=');
      cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    url = new URL(res.headers.get('location')!, url);
  }
  assert.equal(`${url.origin}${url.pathname}`, redirectUri);
  assert.ok(url.searchParams.get('code'));

  const manual = await startSandbox({ autoApprove: false });
  try {
    const start = await fetch(await authorizationUrl(manual), { redirect: 'manual' });
    assert.equal(start.status, 303);
    const cookie = start.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const page = await fetch(new URL(start.headers.get('location')!, manual.issuer), { headers: { cookie } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Approve/);
  } finally {
    await manual.close();
  }
});

test('without rotation the refresh token stays the same and keeps working', async () => {
  const plain = await startSandbox({ rotateRefreshTokens: false, accessTokenTtl: 60 });
  try {
    assert.equal(plain.providerDefinition().refresh_token_rotation, false);
    const issuer = new URL(plain.issuer);
    const meta = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
    const verifier = oauth.generateRandomCodeVerifier();
    const callback = await plain.authorize({
      redirect_uri: redirectUri,
      scope: 'items:read offline_access',
      state: 'st',
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    });
    const params = oauth.validateAuthResponse(meta, client, new URL(callback), 'st');
    const tokens = await oauth.processAuthorizationCodeResponse(
      meta,
      client,
      await oauth.authorizationCodeGrantRequest(meta, client, clientAuth, params, redirectUri, verifier, insecure),
    );
    for (let i = 0; i < 2; i++) {
      const next = await oauth.processRefreshTokenResponse(
        meta,
        client,
        await oauth.refreshTokenGrantRequest(meta, client, clientAuth, tokens.refresh_token!, insecure),
      );
      assert.equal(next.refresh_token, tokens.refresh_token);
    }
    assert.equal(plain.stats().reuseDetected, 0);
  } finally {
    await plain.close();
  }
});
