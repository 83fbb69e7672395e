import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { SignJWT, importPKCS8 } from 'jose';
import { jwtBearerGrantType, startSandbox, type Sandbox, type ServiceAccountKey } from '../../src/sandbox/index.ts';
import { providerSchema, type Provider } from '../../src/providers/index.ts';
import { createOAuthClient, OAuthCallError, type OAuthClient } from '../../src/oauth/index.ts';

// RFC 7523 service accounts against the sandbox, through Warrant's own OAuth client: the flow of
// Google service accounts and Salesforce's JWT bearer flow, on a real token endpoint.

const ttl = 120;
let sb: Sandbox;
let robot: ServiceAccountKey;
let provider: Provider;
let client: OAuthClient;
let tokenUrl: string;

before(async () => {
  sb = await startSandbox({ accessTokenTtl: ttl });
  robot = await sb.addServiceAccount({ client_id: 'robot@sandbox.example' });
  provider = providerSchema.parse(sb.serviceAccountDefinition('sandbox-robot', robot.client_id));
  client = createOAuthClient({ provider, endpoints: provider.environments.production!, clientId: robot.client_id, timeoutMs: 5000 });
  tokenUrl = provider.environments.production!.token_url!;
});
after(() => sb.close());

function api(path: string, token: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${sb.apiBaseUrl}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
}

/** An assertion signed by hand, with every claim overridable. */
async function assertion(claims: Record<string, unknown> = {}, privateKeyPem = robot.privateKeyPem): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iss: robot.client_id, aud: tokenUrl, iat: now, exp: now + 300, jti: randomUUID(), scope: 'items:read', ...claims };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k as keyof typeof payload];
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'JWT' }).sign(await importPKCS8(privateKeyPem, 'RS256'));
}

/** A raw token request: the status and the JSON answer. */
async function exchange(
  jwt: string,
  clientId = robot.client_id,
  headers: Record<string, string> = {},
  extra: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({ grant_type: jwtBearerGrantType, assertion: jwt, ...(headers.authorization ? {} : { client_id: clientId }), ...extra }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const otherKeyPem = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

test('the service-account definition passes the provider schema and points at the sandbox', () => {
  assert.equal(provider.auth, 'jwt_bearer');
  assert.equal(provider.token_auth_method, 'none');
  assert.equal(provider.client_id, robot.client_id);
  assert.equal(provider.jwt_bearer?.audience, tokenUrl);
  assert.equal(provider.jwt_bearer?.algorithm, 'RS256');
  assert.equal(provider.environments.production?.issuer, sb.issuer);
  assert.equal(provider.environments.production?.api_base_url, sb.apiBaseUrl);
  assert.deepEqual(Object.keys(provider.scopes), ['items:read', 'items:write']);
  assert.throws(() => sb.serviceAccountDefinition('x', 'nobody@sandbox.example'), TypeError);
});

test('discovery advertises the JWT bearer grant', async () => {
  const meta = (await (await fetch(`${sb.issuer}/.well-known/openid-configuration`)).json()) as { grant_types_supported: string[] };
  assert.ok(meta.grant_types_supported.includes(jwtBearerGrantType));
});

test("Warrant's jwtBearer gets a token the API honours within its scopes", async () => {
  const tokens = await client.jwtBearer({ privateKeyPem: robot.privateKeyPem, subject: 'alice@example.com', scopes: ['items:read'] });
  assert.equal(tokens.expires_in, ttl);
  assert.equal(tokens.token_type.toLowerCase(), 'bearer');
  assert.equal(tokens.scope, 'items:read');
  assert.equal(tokens.refresh_token, undefined, 'no refresh token for a JWT bearer grant');

  assert.equal((await api('/items', tokens.access_token)).status, 200);
  const who = await (await api('/whoami', tokens.access_token)).json();
  assert.deepEqual(who, { sub: 'alice@example.com', client_id: robot.client_id, scope: 'items:read' });

  const post = await api('/items', tokens.access_token, { method: 'POST', body: JSON.stringify({ name: 'x' }) });
  assert.equal(post.status, 403);
  assert.equal(((await post.json()) as { error: string }).error, 'insufficient_scope');
  assert.match(post.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
});

test('without sub the token is the service account acting for itself', async () => {
  const tokens = await client.jwtBearer({ privateKeyPem: robot.privateKeyPem, scopes: ['items:read', 'items:write'] });
  const who = (await (await api('/whoami', tokens.access_token)).json()) as { sub: string; scope: string };
  assert.deepEqual(who, { sub: robot.client_id, client_id: robot.client_id, scope: 'items:read items:write' });
  assert.equal((await api('/items', tokens.access_token, { method: 'POST', body: JSON.stringify({ name: 'by robot' }) })).status, 201);
});

test('introspection and revocation work with the definition endpoints', async () => {
  const tokens = await client.jwtBearer({ privateKeyPem: robot.privateKeyPem, subject: 'bob@example.com', scopes: ['items:read'] });
  const info = await client.introspect(tokens.access_token, 'access_token');
  assert.equal(info.active, true);
  assert.equal(info.scope, 'items:read');
  await client.revoke(tokens.access_token, 'access_token');
  assert.equal((await api('/items', tokens.access_token)).status, 401);
  assert.equal((await client.introspect(tokens.access_token, 'access_token')).active, false);

  const again = await client.jwtBearer({ privateKeyPem: robot.privateKeyPem, scopes: ['items:read'] });
  await sb.revokeGrantOf(again.access_token);
  assert.equal((await api('/items', again.access_token)).status, 401);
});

test('an assertion signed with the wrong key is a terminal invalid_grant', async () => {
  await assert.rejects(
    client.jwtBearer({ privateKeyPem: otherKeyPem(), subject: 'alice@example.com', scopes: ['items:read'] }),
    (err: unknown) => {
      assert.ok(err instanceof OAuthCallError);
      assert.equal(err.kind, 'terminal');
      assert.equal(err.error, 'invalid_grant');
      assert.equal(err.status, 400);
      return true;
    },
  );
});

test('a replayed assertion (same jti) is refused', async () => {
  const jwt = await assertion({ sub: 'alice@example.com' });
  const first = await exchange(jwt);
  assert.equal(first.status, 200);
  assert.equal(first.body.expires_in, ttl);
  assert.equal(first.body.scope, 'items:read', 'no scope parameter: the assertion\'s scope claim (Google style)');
  const replay = await exchange(jwt);
  assert.equal(replay.status, 400);
  assert.equal(replay.body.error, 'invalid_grant');
  assert.match(String(replay.body.error_description), /already used/);
  // The same jti in a freshly signed assertion is a replay too.
  const jti = randomUUID();
  assert.equal((await exchange(await assertion({ jti }))).status, 200);
  assert.equal((await exchange(await assertion({ jti, iat: Math.floor(Date.now() / 1000) - 1 }))).body.error, 'invalid_grant');
});

test('assertions with a bad claim are invalid_grant; the issuer URL is an accepted audience', async () => {
  const now = Math.floor(Date.now() / 1000);
  const bad: Record<string, Record<string, unknown>> = {
    'wrong aud': { aud: `${sb.apiBaseUrl}` },
    'wrong iss': { iss: 'someone-else@sandbox.example' },
    expired: { iat: now - 600, exp: now - 10 },
    'longer than an hour': { exp: now + 3700 },
    'issued in the future': { iat: now + 600, exp: now + 900 },
    'no jti': { jti: undefined },
    'no exp': { exp: undefined },
  };
  for (const [what, claims] of Object.entries(bad)) {
    const { status, body } = await exchange(await assertion(claims));
    assert.deepEqual({ what, status, error: body.error }, { what, status: 400, error: 'invalid_grant' });
  }
  const garbage = await exchange('not.a.jwt');
  assert.equal(garbage.body.error, 'invalid_grant');
  assert.equal((await exchange(await assertion({ aud: sb.issuer }))).status, 200);
  assert.equal((await exchange(await assertion({ aud: [tokenUrl, 'https://elsewhere.example'] }))).status, 200);
});

test('a resource indicator (RFC 8707) for the API binds the token to it; any other is invalid_target', async () => {
  const bound = await exchange(await assertion(), robot.client_id, {}, { resource: sb.apiBaseUrl });
  assert.equal(bound.status, 200);
  const token = String(bound.body.access_token);
  assert.equal((await api('/items', token)).status, 200);
  const info = (await (
    await fetch(provider.environments.production!.introspection_url!, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, client_id: robot.client_id }),
    })
  ).json()) as { active: boolean; aud: string; sub: string };
  assert.deepEqual({ active: info.active, aud: info.aud, sub: info.sub }, { active: true, aud: sb.apiBaseUrl, sub: robot.client_id });
  const elsewhere = await exchange(await assertion(), robot.client_id, {}, { resource: 'https://elsewhere.example/api' });
  assert.equal(elsewhere.body.error, 'invalid_target');
});

test('scopes beyond the service account are invalid_scope; other clients may not use the grant', async () => {
  const reader = await sb.addServiceAccount({ client_id: 'reader@sandbox.example', scope: 'items:read' });
  const def = providerSchema.parse(sb.serviceAccountDefinition('sandbox-reader', reader.client_id));
  const readerClient = createOAuthClient({ provider: def, endpoints: def.environments.production!, clientId: reader.client_id, timeoutMs: 5000 });
  await assert.rejects(readerClient.jwtBearer({ privateKeyPem: reader.privateKeyPem, scopes: ['items:write'] }), (err: unknown) => {
    assert.ok(err instanceof OAuthCallError);
    assert.equal(err.error, 'invalid_scope');
    return true;
  });
  const ok = await readerClient.jwtBearer({ privateKeyPem: reader.privateKeyPem, scopes: [] });
  assert.equal(ok.scope, 'items:read', 'no scope asked: everything the account may have');

  // The robot's key does not speak for the reader, and `warrant` is not a service account.
  assert.equal((await exchange(await assertion({ iss: reader.client_id }), reader.client_id)).body.error, 'invalid_grant');
  const basic = `Basic ${Buffer.from('warrant:warrant-sandbox-secret').toString('base64')}`;
  const notAllowed = await exchange(await assertion({ iss: 'warrant' }), 'warrant', { authorization: basic });
  assert.deepEqual(
    { status: notAllowed.status, error: notAllowed.body.error, description: notAllowed.body.error_description },
    { status: 400, error: 'invalid_request', description: 'requested grant type is not allowed for this client' },
  );

  await assert.rejects(sb.addServiceAccount({ client_id: 'warrant' }), TypeError);
  await assert.rejects(sb.addServiceAccount({ client_id: reader.client_id }), TypeError);
  await assert.rejects(sb.addServiceAccount({ client_id: 'x@sandbox.example', scope: 'admin' }), TypeError);
});

test('stats count JWT bearer requests, refused ones included', async () => {
  sb.resetStats();
  await client.jwtBearer({ privateKeyPem: robot.privateKeyPem, subject: 'alice@example.com', scopes: ['items:read'] });
  await assert.rejects(client.jwtBearer({ privateKeyPem: otherKeyPem(), scopes: ['items:read'] }), OAuthCallError);
  const s = sb.stats();
  assert.deepEqual(
    { tokenRequests: s.tokenRequests, jwtBearerRequests: s.jwtBearerRequests, clientCredentialsRequests: s.clientCredentialsRequests },
    { tokenRequests: 2, jwtBearerRequests: 2, clientCredentialsRequests: 0 },
  );
});

test('serviceAccounts option: a registered EC P-256 public key signs ES256 assertions', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const other = await startSandbox({
    accessTokenTtl: 60,
    serviceAccounts: [{ client_id: 'ec-robot', publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), scope: 'items:read' }],
  });
  try {
    const def = providerSchema.parse(other.serviceAccountDefinition('ec-sandbox', 'ec-robot'));
    assert.equal(def.jwt_bearer?.algorithm, 'ES256');
    const ec = createOAuthClient({ provider: def, endpoints: def.environments.production!, clientId: 'ec-robot', timeoutMs: 5000 });
    const tokens = await ec.jwtBearer({ privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), subject: 'carol@example.com', scopes: ['items:read'] });
    assert.equal(tokens.expires_in, 60);
    assert.equal((await fetch(`${other.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status, 200);
    assert.equal(other.stats().jwtBearerRequests, 1);
  } finally {
    await other.close();
  }
  await assert.rejects(startSandbox({ serviceAccounts: [{ client_id: 'bad', publicKeyPem: 'not a key' }] }), TypeError);
});
