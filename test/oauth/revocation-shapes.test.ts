import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OAuthCallError, MAX_ANSWER_BYTES, type OAuthClient } from '../../src/oauth/index.ts';
import { describeIssues, providerSchema } from '../../src/providers/index.ts';
import { createClientResolver } from '../../src/tokens/index.ts';
import { ADMIN_TOKEN, startTestWarrant } from '../helpers/app.ts';
import { basicCredentials, basicOf, startRecordingServer, type RecordingServer } from './recording-server.ts';

// Revocation in every shape real IdPs use (issue 9; provider-audit.md findings 1, 2, 3, 7):
// RFC 7009, JSON bodies (Notion), DELETE with Basic auth and a JSON body at a URL holding the
// client id (GitHub), bearer-authenticated (Slack, Linear, Dropbox), and answers that report
// failure with HTTP 200 (Slack `ok: false`) — which used to read as "revoked". Each request is
// observed server-side; a revocation that did not work is never reported as done.

const AT = 'at-secret-5f4e3d2c1b0a';
const RT = 'rt-secret-0a1b2c3d4e5f';
const SECRET = 'client-secret-9z8y7x';

let idp: RecordingServer;
before(async () => {
  idp = await startRecordingServer();
});
after(() => idp.close());

function clientFor(definition: Record<string, unknown>, opts: { timeoutMs?: number; params?: Record<string, string> } = {}): OAuthClient {
  const { environment, ...rest } = definition as { environment?: Record<string, unknown> };
  const provider = providerSchema.parse({
    id: 'shape',
    auth: 'oauth2',
    client_id: 'warrant-client',
    client_secret: SECRET,
    ...rest,
    environments: {
      production: {
        authorization_url: `${idp.url}/authorize`,
        token_url: `${idp.url}/token`,
        revocation_url: `${idp.url}/revoke`,
        api_base_url: `${idp.url}/api`,
        ...environment,
      },
    },
  });
  return createClientResolver({ timeoutMs: opts.timeoutMs ?? 5000, env: {} })(provider, 'production', opts.params ?? {});
}

const noSecretIn = (what: unknown) => {
  const text = `${(what as Error)?.message ?? ''}\n${inspect(what, { depth: 10, showHidden: true })}`;
  for (const s of [AT, RT, SECRET]) assert.ok(!text.includes(s), `a secret in: ${text}`);
};

async function notRevoked(p: Promise<unknown>): Promise<OAuthCallError> {
  const err = await p.then(
    () => assert.fail('reported as revoked'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof OAuthCallError, inspect(err));
  noSecretIn(err);
  return err;
}

describe('every request shape, as the IdP receives it', () => {
  test('no revocation block: RFC 7009 §2.1 form, token_type_hint, client authentication as at the token endpoint', async () => {
    idp.on('/revoke', { status: 200 });
    await clientFor({}).revoke(RT, 'refresh_token');
    const sent = idp.at('/revoke').at(-1)!;
    assert.equal(sent.method, 'POST');
    assert.match(sent.headers['content-type']!, /^application\/x-www-form-urlencoded/);
    assert.deepEqual(Object.fromEntries(new URLSearchParams(sent.body)), { token: RT, token_type_hint: 'refresh_token' });
    assert.deepEqual(basicCredentials(sent.headers.authorization), ['warrant-client', SECRET]);
  });

  test('GitHub: DELETE /applications/{client_id}/grant, plain Basic, JSON {"access_token": …}, 204', async () => {
    const github = {
      client_id: 'Iv1.8a61/f9b3',
      revocation_token: 'access_token',
      revocation: { method: 'DELETE', body: 'json', token_field: 'access_token', auth: 'basic', success: { status: 204 } },
      environment: { revocation_url: `${idp.url}/applications/{client_id}/grant` },
    };
    // The client id is one percent-encoded path segment: its "/" cannot add a segment.
    idp.on('/applications/Iv1.8a61%2Ff9b3/grant', { status: 204 });
    await clientFor(github).revoke(AT, 'access_token');
    const sent = idp.at('/applications/Iv1.8a61%2Ff9b3/grant').at(-1)!;
    assert.equal(sent.method, 'DELETE');
    assert.equal(sent.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(sent.body), { access_token: AT });
    // RFC 7617, as GitHub reads it: "." and "/" of the id as they are.
    assert.equal(sent.headers.authorization, basicOf('Iv1.8a61/f9b3', SECRET));
    // 200 is not GitHub's success.
    idp.on('/applications/Iv1.8a61%2Ff9b3/grant', { status: 200, body: {} });
    assert.equal((await notRevoked(clientFor(github).revoke(AT, 'access_token'))).error, 'not_revoked');
  });

  test('Notion: POST JSON {"token": …}, Basic, revocation.headers sent', async () => {
    idp.on('/revoke', { status: 200, body: { request_id: 'r1' } });
    await clientFor({ revocation: { body: 'json', auth: 'basic', headers: { 'Notion-Version': '2026-03-11' } } }).revoke(AT, 'access_token');
    const sent = idp.at('/revoke').at(-1)!;
    assert.equal(sent.method, 'POST');
    assert.deepEqual(JSON.parse(sent.body), { token: AT });
    assert.equal(sent.headers['notion-version'], '2026-03-11');
    assert.equal(sent.headers.authorization, basicOf('warrant-client', SECRET));
  });

  test('Linear, Dropbox: the token as Bearer, no body; Linear form variant: access_token field, no hint, no client', async () => {
    idp.on('/revoke', { status: 200 });
    await clientFor({ revocation: { auth: 'bearer', body: 'none' } }).revoke(AT, 'access_token');
    let sent = idp.at('/revoke').at(-1)!;
    assert.equal(sent.method, 'POST');
    assert.equal(sent.headers.authorization, `Bearer ${AT}`);
    assert.equal(sent.body, '');
    assert.equal(sent.headers['content-type'], undefined);
    await clientFor({ revocation: { auth: 'none', token_field: 'access_token' } }).revoke(AT, 'access_token');
    sent = idp.at('/revoke').at(-1)!;
    assert.deepEqual(Object.fromEntries(new URLSearchParams(sent.body)), { access_token: AT });
    assert.equal(sent.headers.authorization, undefined);
  });

  test('auth client with client_secret_post and a JSON body: the client members join the token in the JSON', async () => {
    idp.on('/revoke', { status: 200 });
    await clientFor({ token_auth_method: 'client_secret_post', revocation: { body: 'json' } }).revoke(RT, 'refresh_token');
    const sent = idp.at('/revoke').at(-1)!;
    assert.deepEqual(JSON.parse(sent.body), { client_id: 'warrant-client', client_secret: SECRET, token: RT });
    assert.equal(sent.headers.authorization, undefined);
  });

  test('GET with the token as Bearer (Slack auth.revoke also takes GET)', async () => {
    idp.on('/revoke', { status: 200, body: { ok: true, revoked: true } });
    await clientFor({ revocation: { method: 'GET', auth: 'bearer', body: 'none', success: { json: { ok: true } } } }).revoke(AT, 'access_token');
    assert.equal(idp.at('/revoke').at(-1)!.method, 'GET');
  });

  test('Shopify: DELETE with the token as the API takes it (auth api: X-Shopify-Access-Token), no Authorization', async () => {
    idp.on('/revoke', { status: 200, body: {} });
    const shopify = {
      token_injection: { in: 'header', name: 'X-Shopify-Access-Token', format: '{token}' },
      revocation: { method: 'DELETE', body: 'none', auth: 'api', success: { status: 200 } },
    };
    await clientFor(shopify).revoke(AT, 'access_token');
    const sent = idp.at('/revoke').at(-1)!;
    assert.equal(sent.method, 'DELETE');
    assert.equal(sent.headers['x-shopify-access-token'], AT);
    assert.equal(sent.headers.authorization, undefined);
    assert.equal(sent.body, '');
  });
});

describe('the answer decides: revoked only when it says so', () => {
  const slack = { revocation_token: 'access_token', revocation: { auth: 'bearer', body: 'none', success: { json: { ok: true } } } };

  test('Slack 200 {"ok": true} is revoked; 200 {"ok": false, "error": "invalid_auth"} is not, and says its code only', async () => {
    idp.on('/revoke', { status: 200, body: { ok: true, revoked: true } });
    await clientFor(slack).revoke(AT, 'access_token');
    idp.on('/revoke', { status: 200, body: { ok: false, error: 'invalid_auth', token: AT } });
    const err = await notRevoked(clientFor(slack).revoke(AT, 'access_token'));
    assert.deepEqual([err.kind, err.error, err.status], ['misconfigured', 'invalid_auth', 200]);
    // A Slack outage is transient: the connection must be kept for another try.
    idp.on('/revoke', { status: 200, body: { ok: false, error: 'ratelimited' } });
    assert.equal((await notRevoked(clientFor(slack).revoke(AT, 'access_token'))).kind, 'transient');
  });

  test('a success pattern on a nested member; a non-JSON 200 does not match it', async () => {
    const nested = { revocation: { success: { json: { 'data.revoked': true } } } };
    idp.on('/revoke', { status: 200, body: { data: { revoked: true } } });
    await clientFor(nested).revoke(RT, 'refresh_token');
    idp.on('/revoke', { status: 200, body: { data: { revoked: false } } });
    await notRevoked(clientFor(nested).revoke(RT, 'refresh_token'));
    idp.on('/revoke', { status: 200, body: '<html>ok</html>', headers: { 'content-type': 'text/html' } });
    assert.equal((await notRevoked(clientFor(nested).revoke(RT, 'refresh_token'))).error, 'not_revoked');
  });

  test('5xx is transient whatever success says; 4xx is a refusal; a redirect is not followed', async () => {
    const shaped = { revocation: { body: 'json', success: { status: [200, 503] } } };
    idp.on('/revoke', { status: 503, body: { error: 'temporarily_unavailable' } });
    assert.equal((await notRevoked(clientFor(shaped).revoke(RT, 'refresh_token'))).kind, 'transient');
    idp.on('/revoke', { status: 400, body: { error: 'unsupported_token_type' } });
    assert.deepEqual(
      [(await notRevoked(clientFor({ revocation: { body: 'json' } }).revoke(RT, 'refresh_token'))).error],
      ['unsupported_token_type'],
    );
    idp.on('/revoke', { status: 302, headers: { location: `${idp.url}/elsewhere` } });
    const before = idp.at('/elsewhere').length;
    await notRevoked(clientFor({ revocation: { body: 'json' } }).revoke(RT, 'refresh_token'));
    assert.equal(idp.at('/elsewhere').length, before, 'the redirect was followed');
  });

  test('bounded: an answer over 1 MiB is refused unread, a silent IdP times out', async () => {
    idp.on('/revoke', { status: 200, body: { ok: true, pad: 'x'.repeat(MAX_ANSWER_BYTES) } });
    assert.equal((await notRevoked(clientFor({ revocation: { success: { json: { ok: true } } } }).revoke(RT, 'refresh_token'))).error, 'invalid_response');
    idp.on('/revoke', () => {}); // never answers
    const started = Date.now();
    const err = await notRevoked(clientFor({ revocation: { body: 'json' } }, { timeoutMs: 300 }).revoke(RT, 'refresh_token'));
    assert.deepEqual([err.kind, err.error], ['transient', 'timeout']);
    assert.ok(Date.now() - started < 3000);
  });

  test('refused before sending: plain http to a non-loopback host, a shape that sends the token nowhere', async () => {
    const count = idp.received.length;
    const http = await notRevoked(clientFor({ revocation: { body: 'json' }, environment: { revocation_url: 'http://idp.example/revoke' } }).revoke(RT, 'refresh_token'));
    assert.deepEqual([http.kind, http.error], ['misconfigured', 'insecure_endpoint']);
    const nowhere = await notRevoked(clientFor({ revocation: { body: 'none', auth: 'basic' } }).revoke(RT, 'refresh_token'));
    assert.equal(nowhere.kind, 'misconfigured');
    const getWithBody = await notRevoked(clientFor({ revocation: { method: 'GET' } }).revoke(RT, 'refresh_token'));
    assert.equal(getWithBody.kind, 'misconfigured');
    assert.equal(idp.received.length, count);
  });
});

describe('verify_path: does the API still take the token?', () => {
  const slackFailures = [{ status: 200, json: { ok: false, error: ['invalid_auth', 'token_revoked'] } }];

  test('401, or an answer matching auth_failures, is refused; 200 is accepted; 500 proves nothing', async () => {
    const client = clientFor({ auth_failures: slackFailures, revocation: { auth: 'bearer', body: 'none', verify_path: '/auth.test' } });
    idp.on('/api/auth.test', { status: 401 });
    assert.equal((await client.checkTokenRefused(AT)).outcome, 'refused');
    idp.on('/api/auth.test', { status: 200, body: { ok: false, error: 'invalid_auth' } });
    assert.equal((await client.checkTokenRefused(AT)).outcome, 'refused');
    idp.on('/api/auth.test', { status: 200, body: { ok: true, user_id: 'U1' } });
    assert.equal((await client.checkTokenRefused(AT)).outcome, 'accepted');
    idp.on('/api/auth.test', { status: 500 });
    const check = await client.checkTokenRefused(AT);
    assert.equal(check.outcome, 'inconclusive');
    noSecretIn(check.detail);
    const sent = idp.at('/api/auth.test').at(-1)!;
    assert.equal(sent.method, 'GET');
    assert.equal(sent.headers.authorization, `Bearer ${AT}`);
  });

  test('the token goes where token_injection says, with the api_headers (params filled)', async () => {
    const client = clientFor(
      {
        token_injection: { in: 'query', name: 'access_token', format: '{token}' },
        api_headers: { 'Notion-Version': '2026-03-11', 'X-Tenant': '{tenant_id}' },
        connection_params: { tenant_id: { from: 'connection' } },
        revocation: { verify_path: '/v1/users/me' },
      },
      { params: { tenant_id: 't-42' } },
    );
    idp.on('/api/v1/users/me', { status: 401 });
    assert.equal((await client.checkTokenRefused(AT)).outcome, 'refused');
    const sent = idp.at('/api/v1/users/me').at(-1)!;
    assert.equal(new URL(sent.url, 'http://x').searchParams.get('access_token'), AT);
    assert.equal(sent.headers.authorization, undefined);
    assert.equal(sent.headers['notion-version'], '2026-03-11');
    assert.equal(sent.headers['x-tenant'], 't-42');
  });
});

describe('the {client_id} placeholder', () => {
  const base = { id: 'p', auth: 'oauth2', client_id: 'c', scopes: {} };
  const env = (extra: Record<string, string>) => ({ production: { authorization_url: 'https://idp.example/a', token_url: 'https://idp.example/t', api_base_url: 'https://api.example', ...extra } });
  test('allowed in the path of revocation_url only', () => {
    assert.ok(providerSchema.safeParse({ ...base, environments: env({ revocation_url: 'https://api.example/applications/{client_id}/grant' }) }).success);
    for (const [key, url] of [
      ['revocation_url', 'https://{client_id}.example/revoke'],
      ['revocation_url', 'https://api.example/revoke?client={client_id}'],
      ['token_url', 'https://api.example/{client_id}/token'],
    ] as const) {
      const parsed = providerSchema.safeParse({ ...base, environments: env({ [key]: url }) });
      assert.ok(!parsed.success, `${key} ${url} accepted`);
      assert.match(describeIssues(parsed.error), new RegExp(`environments\\.production\\.${key}`));
    }
  });
});

describe('DELETE /v1/connections/{id}: the report says what the IdP did', () => {
  let dir: string;
  let app: Awaited<ReturnType<typeof startTestWarrant>>;
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warrant-revocation-'));
    const environments = { production: { authorization_url: `${idp.url}/authorize`, token_url: `${idp.url}/token`, api_base_url: `${idp.url}/api` } };
    const providers = [
      {
        id: 'slack-like',
        auth: 'oauth2',
        client_id: 'slack-client',
        client_secret: SECRET,
        environments: { production: { ...environments.production, revocation_url: `${idp.url}/api/auth.revoke` } },
        revocation_token: 'access_token',
        revocation: { auth: 'bearer', body: 'none', success: { json: { ok: true } }, verify_path: '/auth.test' },
        auth_failures: [{ status: 200, json: { ok: false, error: ['invalid_auth', 'token_revoked'] } }],
      },
      {
        id: 'github-like',
        auth: 'oauth2',
        client_id: 'Iv1.abc',
        client_secret: SECRET,
        environments: { production: { ...environments.production, revocation_url: `${idp.url}/applications/{client_id}/grant` } },
        revocation_token: 'access_token',
        revocation: { method: 'DELETE', body: 'json', token_field: 'access_token', auth: 'basic', success: { status: 204 }, verify_path: '/user' },
      },
    ];
    writeFileSync(join(dir, 'providers.json'), JSON.stringify(providers));
    app = await startTestWarrant({ WARRANT_PROVIDERS: join(dir, 'providers.json') });
  });
  after(async () => {
    await app?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  async function disconnect(provider: string) {
    const imported = await app.warrant.app.inject({ method: 'POST', url: '/v1/connections', headers: auth, payload: { provider, owner: 'ada@example.com', access_token: AT, scopes: [] } });
    assert.equal(imported.statusCode, 201, imported.body);
    const id = imported.json().id as string;
    const res = await app.warrant.app.inject({ method: 'DELETE', url: `/v1/connections/${id}`, headers: auth });
    assert.equal(res.statusCode, 200, res.body);
    noSecretIn(res.body);
    const audit = await app.warrant.audit.query({ subject: `connection:${id}` });
    noSecretIn(JSON.stringify(audit));
    return { id, report: res.json() };
  }

  test('Slack ok:false: not revoked, not verified (the API still answers ok), the IdP error code in detail', async () => {
    idp.on('/api/auth.revoke', { status: 200, body: { ok: false, error: 'invalid_auth' } });
    idp.on('/api/auth.test', { status: 200, body: { ok: true, user_id: 'U1' } });
    const { id, report } = await disconnect('slack-like');
    assert.deepEqual(report, { id, revoked: false, verified: false, verification: 'api_refused', detail: 'the IdP refused the revocation (invalid_auth)', deleted: true });
  });

  test('Slack ok:true, then auth.test refuses the token: revoked and verified by the API', async () => {
    idp.on('/api/auth.revoke', { status: 200, body: { ok: true, revoked: true } });
    idp.on('/api/auth.test', { status: 200, body: { ok: false, error: 'token_revoked' } });
    const { id, report } = await disconnect('slack-like');
    assert.deepEqual(report, { id, revoked: true, verified: true, verification: 'api_refused', detail: 'the API refuses the revoked token (/auth.test answered 200)', deleted: true });
    assert.equal(idp.at('/api/auth.test').at(-1)!.headers.authorization, `Bearer ${AT}`);
  });

  test('GitHub DELETE 204, then /user answers 401: revoked and verified', async () => {
    idp.on('/applications/Iv1.abc/grant', { status: 204 });
    idp.on('/api/user', { status: 401, body: { message: 'Bad credentials' } });
    const { id, report } = await disconnect('github-like');
    assert.deepEqual(report, { id, revoked: true, verified: true, verification: 'api_refused', detail: 'the API refuses the revoked token (/user answered 401)', deleted: true });
    const sent = idp.at('/applications/Iv1.abc/grant').at(-1)!;
    assert.equal(sent.method, 'DELETE');
    assert.deepEqual(JSON.parse(sent.body), { access_token: AT });
  });

  test('a transient revocation failure keeps the connection for another try', async () => {
    idp.on('/api/auth.revoke', { status: 200, body: { ok: false, error: 'ratelimited' } });
    const imported = await app.warrant.app.inject({ method: 'POST', url: '/v1/connections', headers: auth, payload: { provider: 'slack-like', owner: 'ada@example.com', access_token: AT, scopes: [] } });
    const id = imported.json().id as string;
    const res = await app.warrant.app.inject({ method: 'DELETE', url: `/v1/connections/${id}`, headers: auth });
    assert.equal(res.statusCode, 502, res.body);
    assert.equal(res.json().code, 'upstream_unavailable');
    noSecretIn(res.body);
    assert.ok(await app.warrant.store.connections.get(id));
  });
});
