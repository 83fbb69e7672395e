import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { inspect } from 'node:util';
import { OAuthCallError, MAX_RETRY_AFTER_SECONDS, type OAuthClient } from '../../src/oauth/index.ts';
import { json, reply, startIdpEndpoint, type IdpEndpoint } from './idp-endpoint.ts';

// How an IdP's failures are classified (issue 7, items 3 and 7): kind, error code, status and
// Retry-After, read from what a real token endpoint on loopback sends, through the real client.

const REFRESH_TOKEN = 'rt_secret_5f2c9a7e1b3d4f60';

let idp: IdpEndpoint;
let client: OAuthClient;

before(async () => {
  idp = await startIdpEndpoint();
  client = idp.client();
});
after(() => idp.close());

/** The refresh's failure; fails the test when the refresh succeeds or throws anything else. */
async function failure(c: OAuthClient = client, call: () => Promise<unknown> = () => c.refresh(REFRESH_TOKEN)): Promise<OAuthCallError> {
  try {
    await call();
  } catch (err) {
    assert.ok(err instanceof OAuthCallError, `expected an OAuthCallError, got ${inspect(err)}`);
    const everything = inspect(err, { depth: 10, showHidden: true });
    assert.ok(!everything.includes(REFRESH_TOKEN) && !everything.includes('client-secret-value'), `a secret in the error: ${everything}`);
    return err;
  }
  assert.fail('the call succeeded');
}

function expect(err: OAuthCallError, want: { kind: string; error: string; status?: number; retryAfter?: number }) {
  assert.deepEqual(
    { kind: err.kind, error: err.error, status: err.status, retryAfter: err.retryAfter },
    { kind: want.kind, error: want.error, status: want.status, retryAfter: want.retryAfter },
    err.message,
  );
  assert.match(err.message, /^refresh: /);
}

describe('an IdP that is failing for now is transient, named by what it said', () => {
  test('503 {"error":"temporarily_unavailable"} is transient temporarily_unavailable, not invalid_response', async () => {
    // Regression: oauth4webapi reads bodies only of 4xx answers, so this was reported as `invalid_response`.
    idp.answer(json(503, { error: 'temporarily_unavailable', error_description: 'maintenance' }));
    expect(await failure(), { kind: 'transient', error: 'temporarily_unavailable', status: 503 });
  });

  test('every 5xx is transient: with an OAuth code it is kept, without one it is server_error', async () => {
    const cases: [number, ReturnType<typeof reply>, string][] = [
      [500, reply(500, '<html><body><h1>Internal Server Error</h1></body></html>', { 'content-type': 'text/html' }), 'server_error'],
      [502, reply(502), 'server_error'],
      [504, json(504, { message: 'upstream timed out' }), 'server_error'],
      [503, json(503, '{"error":"temporarily_unav'), 'server_error'],
      [500, json(500, { error: 'server_error' }), 'server_error'],
      [599, reply(599, 'odd'), 'server_error'],
      // An outage is no verdict on the grant, whatever the body says.
      [500, json(500, { error: 'invalid_grant' }), 'invalid_grant'],
      // A code that is free text is not repeated.
      [503, json(503, { error: 'Service down; token=abc def' }), 'server_error'],
    ];
    for (const [status, handler, error] of cases) {
      idp.answer(handler);
      expect(await failure(), { kind: 'transient', error, status });
    }
  });

  test('Retry-After is honoured (seconds or HTTP-date) and capped', async () => {
    idp.answer(json(503, { error: 'temporarily_unavailable' }, { 'retry-after': '7' }));
    expect(await failure(), { kind: 'transient', error: 'temporarily_unavailable', status: 503, retryAfter: 7 });
    idp.answer(reply(503, '', { 'retry-after': new Date(Date.now() + 120_000).toUTCString() }));
    const dated = await failure();
    assert.ok(dated.retryAfter! >= 115 && dated.retryAfter! <= 121, String(dated.retryAfter));
    idp.answer(reply(503, '', { 'retry-after': '999999999' }));
    assert.equal((await failure()).retryAfter, MAX_RETRY_AFTER_SECONDS);
    idp.answer(reply(503, '', { 'retry-after': 'soon' }));
    assert.equal((await failure()).retryAfter, undefined);
  });

  test('429 is transient: slow_down when the IdP says so, rate_limited otherwise', async () => {
    idp.answer(json(429, { error: 'slow_down' }, { 'retry-after': '3' }));
    expect(await failure(), { kind: 'transient', error: 'slow_down', status: 429, retryAfter: 3 });
    idp.answer(reply(429, 'Too Many Requests', { 'content-type': 'text/plain', 'retry-after': '2' }));
    expect(await failure(), { kind: 'transient', error: 'rate_limited', status: 429, retryAfter: 2 });
  });

  test('200 with an error body (GitHub style) is classified by its code', async () => {
    idp.answer(json(200, { error: 'temporarily_unavailable' }));
    expect(await failure(), { kind: 'transient', error: 'temporarily_unavailable', status: 400 });
  });

  test('a redirect away from the token endpoint is not followed: transient invalid_response', async () => {
    idp.answer(reply(302, '', { location: 'https://status.example/maintenance' }));
    expect(await failure(), { kind: 'transient', error: 'invalid_response', status: 302 });
  });
});

describe('the transport: timeouts and broken connections', () => {
  test('an IdP that never answers is a timeout', async () => {
    idp.answer(() => {});
    expect(await failure(idp.client({ timeoutMs: 300 })), { kind: 'transient', error: 'timeout' });
  });

  test('an answer whose body never finishes is a timeout too (the deadline covers the body read)', async () => {
    idp.answer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"access_token":');
    });
    expect(await failure(idp.client({ timeoutMs: 300 })), { kind: 'transient', error: 'timeout' });
  });

  test('a connection refused is network_error', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const c = idp.client({
      definition: {
        environments: { production: { authorization_url: `${idp.url}/authorize`, token_url: `http://127.0.0.1:${port}/token`, api_base_url: `${idp.url}/api` } },
      },
    });
    const err = await failure(c);
    expect(err, { kind: 'transient', error: 'network_error' });
    assert.match(err.message, /ECONNREFUSED/);
  });

  test('a connection reset before or during the answer is network_error', async () => {
    idp.answer((req) => req.socket.destroy());
    expect(await failure(), { kind: 'transient', error: 'network_error' });
    idp.answer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '500' });
      res.write('{"access_token":"at_partial');
      setTimeout(() => req.socket.destroy(), 20);
    });
    expect(await failure(), { kind: 'transient', error: 'network_error' });
  });
});

describe('verdicts on the grant and on the client', () => {
  test('400 invalid_grant is terminal, whatever the content-type; its description (which may echo the token) is not repeated', async () => {
    for (const contentType of ['application/json', 'text/plain', 'text/html']) {
      idp.answer(reply(400, JSON.stringify({ error: 'invalid_grant', error_description: `refresh token ${REFRESH_TOKEN} is revoked` }), { 'content-type': contentType }));
      expect(await failure(), { kind: 'terminal', error: 'invalid_grant', status: 400 });
    }
  });

  test('401 is a failed client authentication: misconfigured invalid_client', async () => {
    idp.answer(reply(401, '', { 'www-authenticate': 'Basic realm="token"' }));
    expect(await failure(), { kind: 'misconfigured', error: 'invalid_client', status: 401 });
    idp.answer(json(401, { error: 'invalid_client' }));
    expect(await failure(), { kind: 'misconfigured', error: 'invalid_client', status: 401 });
  });

  test('other 4xx: an OAuth code decides; without one the endpoint is wrong (misconfigured invalid_response)', async () => {
    idp.answer(json(400, { error: 'invalid_scope' }));
    expect(await failure(), { kind: 'misconfigured', error: 'invalid_scope', status: 400 });
    idp.answer(json(400, { error: 'temporarily_unavailable' }));
    expect(await failure(), { kind: 'transient', error: 'temporarily_unavailable', status: 400 });
    idp.answer(reply(404, '<html>Not Found</html>', { 'content-type': 'text/html' }));
    expect(await failure(), { kind: 'misconfigured', error: 'invalid_response', status: 404 });
    idp.answer(reply(408));
    expect(await failure(), { kind: 'transient', error: 'timeout', status: 408 });
  });
});

describe('revocation and introspection are classified the same way', () => {
  test('503 at the revocation endpoint is transient; 200 and 204 are success', async () => {
    idp.answer(json(503, { error: 'temporarily_unavailable' }));
    const err = await failure(client, () => client.revoke(REFRESH_TOKEN, 'refresh_token'));
    assert.deepEqual([err.kind, err.error, err.status], ['transient', 'temporarily_unavailable', 503]);
    assert.match(err.message, /^revocation: /);
    idp.answer(reply(204));
    await client.revoke(REFRESH_TOKEN, 'refresh_token');
    idp.answer(reply(200, 'ok', { 'content-type': 'text/plain' }));
    await client.revoke(REFRESH_TOKEN, 'refresh_token');
  });

  test('introspection: 502 is transient, a JSON answer is read', async () => {
    idp.answer(reply(502, 'Bad Gateway'));
    const err = await failure(client, () => client.introspect(REFRESH_TOKEN, 'refresh_token'));
    assert.deepEqual([err.kind, err.error, err.status], ['transient', 'server_error', 502]);
    idp.answer(json(200, { active: true, sub: 'alice', exp: 2_000_000_000 }));
    assert.deepEqual(await client.introspect(REFRESH_TOKEN, 'refresh_token'), { active: true, sub: 'alice', exp: 2_000_000_000, scope: undefined });
  });
});
