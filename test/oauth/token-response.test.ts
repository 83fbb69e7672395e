import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { MAX_ANSWER_BYTES, MAX_EXPIRES_IN_SECONDS, OAuthCallError, type OAuthClient, type TokenSet } from '../../src/oauth/index.ts';
import { json, reply, startIdpEndpoint, type IdpEndpoint } from './idp-endpoint.ts';

// Bad token endpoint answers (issue 7, item 8): each is a classified refresh failure or a sane,
// normalised TokenSet; nothing crashes, no token in an error. Reproduces: `expires_in` of 10^12,
// -5 or "abc" reaching the token service, `token_type: "bot"` refused by oauth4webapi, a 1 GiB
// answer buffered whole.

const AT = 'at_secret_0b1c2d3e4f5a6b7c';
const RT = 'rt_secret_9f8e7d6c5b4a3928';

let idp: IdpEndpoint;
let client: OAuthClient;

before(async () => {
  idp = await startIdpEndpoint();
  client = idp.client();
});
after(() => idp.close());

const noSecretIn = (err: unknown, ...secrets: string[]) => {
  const everything = `${(err as Error).message}\n${inspect(err, { depth: 10, showHidden: true })}`;
  for (const s of secrets) assert.ok(!everything.includes(s), `a token in the error: ${everything}`);
};

async function refused(handler: ReturnType<typeof reply>, want = { kind: 'transient', error: 'invalid_response' }): Promise<OAuthCallError> {
  idp.answer(handler);
  try {
    const tokens = await client.refresh(RT);
    assert.fail(`accepted: ${JSON.stringify(tokens)}`);
  } catch (err) {
    assert.ok(err instanceof OAuthCallError, inspect(err));
    assert.equal(err.kind, want.kind, err.message);
    assert.equal(err.error, want.error, err.message);
    noSecretIn(err, AT, RT);
    return err;
  }
}

async function accepted(body: Record<string, unknown>): Promise<TokenSet> {
  idp.answer(json(200, body));
  return client.refresh(RT);
}

describe('answers that are not a token response are refused as invalid_response (transient)', () => {
  test('HTML, empty, truncated JSON, not an object, not UTF-8', async () => {
    await refused(reply(200, '<!doctype html><html><body>Sign in</body></html>', { 'content-type': 'text/html' }));
    await refused(reply(200, '', { 'content-type': 'application/json' }));
    await refused(reply(200));
    await refused(reply(200, `{"access_token":"${AT}","token_type":"Bearer","refresh_tok`, { 'content-type': 'application/json' }));
    for (const body of ['null', '[]', `["${AT}"]`, '"text"', '42', 'true']) await refused(json(200, body));
    await refused(reply(200, Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]), { 'content-type': 'application/json' }));
  });

  test('no usable access_token: missing, empty, a number, an object, with a line break', async () => {
    const base = { token_type: 'Bearer', refresh_token: RT, expires_in: 3600 };
    for (const access_token of [undefined, '', '   ', null, 12345, { value: AT }, [AT], `${AT}\r\nX-Injected: 1`]) {
      const err = await refused(json(200, { ...base, access_token }));
      assert.match(err.message, /access_token/);
    }
  });

  test('a refresh_token that is not a string refuses the answer; null or "" means "keep the old one"', async () => {
    for (const refresh_token of [42, { v: RT }, true, `${RT}\n`]) await refused(json(200, { access_token: AT, token_type: 'Bearer', refresh_token }));
    for (const refresh_token of [null, '']) assert.equal((await accepted({ access_token: AT, token_type: 'Bearer', refresh_token })).refresh_token, undefined);
  });

  test('an answer over 1 MiB is refused without being buffered: declared, chunked, or compressed', async () => {
    const big = `{"access_token":"${AT}","pad":"${'x'.repeat(MAX_ANSWER_BYTES)}"}`;
    await refused(reply(200, big, { 'content-type': 'application/json' }));
    // Chunked, endless: the client must stop reading long before the server runs out.
    let sent = 0;
    await refused((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`{"access_token":"${AT}","pad":"`);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = () => {
        while (sent < 256 * MAX_ANSWER_BYTES && !res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end('"}');
      };
      req.socket.once('close', () => res.destroy());
      pump();
    });
    assert.ok(sent < 32 * MAX_ANSWER_BYTES, `the server sent ${sent} bytes before the client stopped`);
    // A gzip bomb: 2 KiB on the wire, 2 MiB once decoded.
    const bomb = gzipSync(Buffer.from(`{"access_token":"${AT}","pad":"${'0'.repeat(2 * MAX_ANSWER_BYTES)}"}`));
    await refused(reply(200, bomb, { 'content-type': 'application/json', 'content-encoding': 'gzip' }));
    // An error page that large still classifies by its status.
    await refused(reply(503, 'x'.repeat(2 * MAX_ANSWER_BYTES), { 'content-type': 'text/html' }), { kind: 'transient', error: 'server_error' });
  });
});

describe('metadata is normalised, not refused (refusing would throw away a rotated refresh token)', () => {
  test('expires_in: positive numbers kept (floored), digit strings read, the rest unknown, absurd values clamped', async () => {
    const cases: [unknown, number | undefined][] = [
      [3600, 3600],
      [3599.7, 3599],
      ['3600', 3600],
      [' 86400 ', 86400],
      ['abc', undefined],
      ['3600abc', undefined],
      ['-5', undefined],
      [-5, undefined],
      [0, undefined],
      [0.4, undefined],
      [1e12, MAX_EXPIRES_IN_SECONDS],
      [1e308, MAX_EXPIRES_IN_SECONDS],
      [null, undefined],
      [true, undefined],
      [{ seconds: 3600 }, undefined],
      [undefined, undefined],
    ];
    for (const [expires_in, want] of cases) {
      const tokens = await accepted({ access_token: AT, token_type: 'Bearer', expires_in });
      assert.equal(tokens.expires_in, want, `expires_in ${JSON.stringify(expires_in)}`);
      assert.equal(tokens.access_token, AT);
      assert.ok(!('expires_in' in tokens.extra));
    }
  });

  test('token_type: any type the IdP names is accepted and kept; a missing or malformed one reads as bearer', async () => {
    for (const [token_type, want] of [
      ['Bearer', 'bearer'],
      ['bot', 'bot'],
      ['MAC', 'mac'],
      ['DPoP', 'dpop'],
      [undefined, 'bearer'],
      [42, 'bearer'],
      ['', 'bearer'],
    ] as const) {
      const tokens = await accepted({ access_token: AT, token_type, refresh_token: RT, expires_in: 60 });
      assert.deepEqual([tokens.token_type, tokens.access_token, tokens.refresh_token, tokens.expires_in], [want, AT, RT, 60], String(token_type));
    }
  });

  test('token_type "bot" through the code exchange and the client credentials grant too', async () => {
    idp.answer(json(200, { access_token: AT, token_type: 'bot', expires_in: 60 }));
    const exchanged = await client.exchangeCode(new URLSearchParams({ code: 'the-code', state: 'st' }), { redirectUri: 'http://127.0.0.1/cb', expectedState: 'st', codeVerifier: 'v'.repeat(43) });
    assert.equal(exchanged.token_type, 'bot');
    const granted = await client.clientCredentials(['a']);
    assert.deepEqual([granted.token_type, granted.access_token], ['bot', AT]);
  });

  test('scope: a string is kept, a list of strings joined, anything else read as absent (the requested scopes)', async () => {
    assert.equal((await accepted({ access_token: AT, scope: 'a b' })).scope, 'a b');
    assert.equal((await accepted({ access_token: AT, scope: ['a', 'b'] })).scope, 'a b');
    for (const scope of [{ a: true }, 42, ['a', 1], '  ', null]) assert.equal((await accepted({ access_token: AT, scope })).scope, undefined, JSON.stringify(scope));
  });

  test('other members are kept in extra (instance_url …), tokens and id_token never are', async () => {
    const tokens = await accepted({ access_token: AT, refresh_token: RT, id_token: 'eyJ.x.y', instance_url: 'https://na1.example', realmId: 7 });
    assert.deepEqual(tokens.extra, { instance_url: 'https://na1.example', realmId: 7 });
  });
});

describe('property: any status, any body → a well-typed TokenSet or an OAuthCallError without a token in it', () => {
  const secret = fc.stringMatching(/^[0-9a-f]{20}$/).map((h) => `sec_${h}`);
  const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), secret);
  const tokenBody = fc.record(
    {
      access_token: fc.oneof(secret, secret, value),
      refresh_token: fc.oneof(secret, value),
      token_type: fc.oneof(fc.constantFrom('Bearer', 'bearer', 'bot', 'mac', 'DPoP', 'N_A'), value),
      expires_in: fc.oneof(fc.integer(), fc.double(), fc.constantFrom('3600', 'abc', '-1', '1e9', ''), value),
      scope: fc.oneof(fc.string(), fc.array(fc.string()), value),
      error: fc.oneof(fc.constantFrom('invalid_grant', 'temporarily_unavailable', 'slow_down', 'invalid_client', 'server_error'), fc.string()),
      extra: value,
    },
    { requiredKeys: [] },
  );
  const body = fc.oneof(
    tokenBody.map((b) => Buffer.from(JSON.stringify(b))),
    tokenBody.map((b) => Buffer.from(JSON.stringify(b).slice(0, -3))),
    fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? '')),
    fc.string().map((s) => Buffer.from(s)),
    fc.uint8Array({ maxLength: 256 }).map((a) => Buffer.from(a)),
  );
  const status = fc.oneof(fc.constantFrom(200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 408, 429, 500, 502, 503, 504), fc.integer({ min: 200, max: 599 }));
  const contentType = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/html', 'text/plain', undefined);
  const retryAfter = fc.option(fc.oneof(fc.nat().map(String), fc.string()), { nil: undefined });
  const CODE = /^[A-Za-z0-9_.:-]{1,64}$/;

  test('holds for 400 random answers', async () => {
    await fc.assert(
      fc.asyncProperty(status, body, contentType, retryAfter, async (st, bytes, ct, ra) => {
        const headers: Record<string, string> = {};
        if (ct) headers['content-type'] = ct;
        // A header value must be valid on the wire; what fast-check makes up need not be.
        if (ra !== undefined && /^[\x20-\x7e]*$/.test(ra)) headers['retry-after'] = ra;
        idp.answer(reply(st, bytes, headers));
        const secrets = bytes.toString('latin1').match(/sec_[0-9a-f]{20}/g) ?? [];
        try {
          const t = await client.refresh(RT);
          assert.ok(typeof t.access_token === 'string' && t.access_token.trim().length > 0);
          assert.ok(!/[\u0000-\u001f\u007f]/.test(t.access_token));
          assert.equal(typeof t.token_type, 'string');
          assert.ok(t.expires_in === undefined || (Number.isInteger(t.expires_in) && t.expires_in >= 1 && t.expires_in <= MAX_EXPIRES_IN_SECONDS), String(t.expires_in));
          assert.ok(t.refresh_token === undefined || (typeof t.refresh_token === 'string' && t.refresh_token.length > 0));
          assert.ok(t.scope === undefined || typeof t.scope === 'string');
          assert.ok(typeof t.extra === 'object' && t.extra !== null && !('access_token' in t.extra) && !('refresh_token' in t.extra));
        } catch (err) {
          assert.ok(err instanceof OAuthCallError, `not an OAuthCallError: ${inspect(err)}`);
          assert.ok(['terminal', 'transient', 'misconfigured'].includes(err.kind));
          assert.match(err.error, CODE);
          assert.ok(err.retryAfter === undefined || (err.retryAfter >= 0 && err.retryAfter <= 3600));
          noSecretIn(err, RT, ...secrets);
        }
      }),
      { numRuns: 400 },
    );
  });
});
