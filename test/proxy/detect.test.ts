import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import { providerSchema, type Provider, type ResponsePattern } from '../../src/providers/schema.ts';
import { classifyUpstream, matchesPattern, needsBody, parseBearerChallenge, type UpstreamAnswer } from '../../src/proxy/detect.ts';

const catalog = (id: string): Provider =>
  providerSchema.parse(parseYaml(readFileSync(new URL(`../../src/providers/catalog/${id}.yaml`, import.meta.url), 'utf8')));

const answer = (status: number, body?: unknown, headers: UpstreamAnswer['headers'] = {}): UpstreamAnswer => ({
  status,
  headers,
  ...(body === undefined ? {} : typeof body === 'string' ? { text: body } : { json: body, text: JSON.stringify(body) }),
});

const noPatterns = { auth_failures: [], scope_failures: [] };

test('Slack: 200 {"ok":false,"error":"token_expired"} is an auth failure', () => {
  const slack = catalog('slack');
  assert.deepEqual(classifyUpstream(slack, answer(200, { ok: false, error: 'token_expired' })), { kind: 'auth_failure' });
  assert.deepEqual(classifyUpstream(slack, answer(200, { ok: false, error: 'invalid_auth' })), { kind: 'auth_failure' });
  // from the raw text alone, too
  assert.deepEqual(classifyUpstream(slack, { status: 200, headers: {}, text: '{"ok":false,"error":"token_revoked"}' }), { kind: 'auth_failure' });
  assert.deepEqual(classifyUpstream(slack, answer(200, { ok: true, channels: [] })), { kind: 'ok' });
  assert.deepEqual(classifyUpstream(slack, answer(200, { ok: false, error: 'channel_not_found' })), { kind: 'ok' });
  assert.deepEqual(classifyUpstream(slack, answer(200, { ok: 'false', error: 'token_expired' })), { kind: 'ok' }, 'types are compared strictly');
  assert.deepEqual(classifyUpstream(slack, answer(500, { ok: false, error: 'token_expired' })), { kind: 'ok' }, 'status must match');
  assert.deepEqual(classifyUpstream(slack, answer(200, 'not json')), { kind: 'ok' });
  assert.deepEqual(classifyUpstream(slack, answer(200, [{ ok: false, error: 'token_expired' }])), { kind: 'ok' }, 'an array is not an object');
});

test('Slack: missing_scope names the scope in "needed"', () => {
  const slack = catalog('slack');
  assert.deepEqual(classifyUpstream(slack, answer(200, { ok: false, error: 'missing_scope', needed: 'chat:write', provided: 'channels:read' })), {
    kind: 'scope_failure',
    requiredScope: 'chat:write',
  });
  assert.deepEqual(classifyUpstream(slack, answer(200, { ok: false, error: 'missing_scope' })), { kind: 'scope_failure' });
});

test('GitHub-like: a plain 401 is an auth failure, 403/404 pass through', () => {
  const github = catalog('github');
  assert.deepEqual(classifyUpstream(github, answer(401, { message: 'Bad credentials' })), { kind: 'auth_failure' });
  assert.deepEqual(classifyUpstream(github, answer(401, undefined, { 'www-authenticate': 'Bearer error="invalid_token"' })), { kind: 'auth_failure' });
  assert.deepEqual(classifyUpstream(github, answer(403, { message: 'Resource not accessible by integration' })), { kind: 'ok' });
  assert.deepEqual(classifyUpstream(github, answer(404, { message: 'Not Found' })), { kind: 'ok' });
  assert.deepEqual(classifyUpstream(github, answer(200, [{ id: 1 }])), { kind: 'ok' });
  assert.equal(needsBody(github), false);
});

test('RFC 6750: 403 with error="insufficient_scope" is a scope failure with the challenge scope', () => {
  const h = { 'WWW-Authenticate': 'Bearer realm="api", error="insufficient_scope", scope="items:write items:admin"' };
  assert.deepEqual(classifyUpstream(noPatterns, answer(403, undefined, h)), { kind: 'scope_failure', requiredScope: 'items:write items:admin' });
  assert.deepEqual(classifyUpstream(noPatterns, answer(403, undefined, { 'www-authenticate': 'Bearer error="insufficient_scope"' })), { kind: 'scope_failure' });
  assert.deepEqual(
    classifyUpstream(noPatterns, answer(403, undefined, { 'www-authenticate': ['Basic realm="x"', 'Bearer error=insufficient_scope, scope=files.read'] })),
    { kind: 'scope_failure', requiredScope: 'files.read' },
    'repeated headers and unquoted values',
  );
  assert.deepEqual(classifyUpstream(noPatterns, answer(401, undefined, { 'www-authenticate': 'Bearer error="insufficient_scope", scope="x"' })), {
    kind: 'scope_failure',
    requiredScope: 'x',
  }, 'a 401 that says insufficient_scope is not fixed by a refresh');
  assert.deepEqual(classifyUpstream(noPatterns, answer(403, undefined, { 'www-authenticate': 'Bearer error="invalid_token"' })), { kind: 'ok' });
  assert.deepEqual(classifyUpstream(noPatterns, answer(200, undefined, { 'www-authenticate': 'Bearer error="insufficient_scope"' })), { kind: 'ok' });
  assert.deepEqual(classifyUpstream(noPatterns, answer(403)), { kind: 'ok' });
});

test('Atlassian: a 401 "scope does not match" is a scope failure, not an auth failure', () => {
  const jira = catalog('atlassian-jira');
  assert.deepEqual(classifyUpstream(jira, answer(401, { code: 401, message: 'Unauthorized; scope does not match' })), { kind: 'scope_failure' });
  assert.deepEqual(classifyUpstream(jira, answer(401, { code: 401, message: 'Unauthorized' })), { kind: 'auth_failure' });
  assert.equal(needsBody(jira), true);
  assert.equal(needsBody(jira, 401), true);
  assert.equal(needsBody(jira, 200), false, 'only 401 bodies can change the verdict');
});

test('Google: scope failure from the header pattern or the body; Figma: 403 auth failure', () => {
  const gmail = catalog('google-gmail');
  const h = { 'www-authenticate': 'Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="https://www.googleapis.com/auth/gmail.send"' };
  assert.deepEqual(classifyUpstream(gmail, answer(403, { error: { code: 403 } }, h)), { kind: 'scope_failure', requiredScope: 'https://www.googleapis.com/auth/gmail.send' });
  assert.deepEqual(classifyUpstream(gmail, answer(403, '{"error":{"status":"PERMISSION_DENIED","details":[{"reason":"ACCESS_TOKEN_SCOPE_INSUFFICIENT"}]}}')), { kind: 'scope_failure' });
  const figma = catalog('figma');
  assert.deepEqual(classifyUpstream(figma, answer(403, { status: 403, err: 'Token expired' })), { kind: 'auth_failure' });
  assert.deepEqual(classifyUpstream(figma, answer(403, { status: 403, err: 'Forbidden' })), { kind: 'ok' });
});

test('scope patterns are checked before auth patterns; required_scope_field may be a dotted path', () => {
  const provider = {
    auth_failures: [{ status: 401 }] as ResponsePattern[],
    scope_failures: [{ status: 401, body_contains: 'missing_scope', required_scope_field: 'error.required_scope' }] as ResponsePattern[],
  };
  assert.deepEqual(
    classifyUpstream(provider, answer(401, { error_summary: 'missing_scope/..', error: { '.tag': 'missing_scope', required_scope: 'files.content.read' } })),
    { kind: 'scope_failure', requiredScope: 'files.content.read' },
  );
  assert.deepEqual(classifyUpstream(provider, answer(401, { error_summary: 'expired_access_token/' })), { kind: 'auth_failure' });
  const list = { auth_failures: [], scope_failures: [{ status: 403, json: { category: 'MISSING_SCOPES' }, required_scope_field: 'needed' }] as ResponsePattern[] };
  assert.deepEqual(classifyUpstream(list, answer(403, { category: 'MISSING_SCOPES', needed: ['a', 'b'] })), { kind: 'scope_failure', requiredScope: 'a b' });
});

test('matchesPattern: every member given must match', () => {
  const r = answer(403, { error: 'missing_scope', code: 7, ok: false, nothing: null }, { 'X-Thing': 'alpha beta', 'set-cookie': ['a=1', 'b=2'] });
  assert.ok(matchesPattern({ status: 403 }, r));
  assert.ok(matchesPattern({ status: [401, 403] }, r));
  assert.ok(!matchesPattern({ status: [401, 402] }, r));
  assert.ok(matchesPattern({ json: { error: 'missing_scope' } }, r));
  assert.ok(matchesPattern({ json: { error: ['x', 'missing_scope'], code: 7 } }, r));
  assert.ok(matchesPattern({ json: { ok: false, nothing: null } }, r));
  assert.ok(!matchesPattern({ json: { absent: null } }, r), 'a missing member is not null');
  assert.ok(!matchesPattern({ json: { code: '7' } }, r));
  assert.ok(!matchesPattern({ json: { error: 'missing_scope', code: 8 } }, r));
  assert.ok(matchesPattern({ header: { 'x-thing': 'beta' } }, r), 'header names in any case');
  assert.ok(matchesPattern({ header: { 'SET-COOKIE': 'b=2' } }, r), 'repeated headers');
  assert.ok(!matchesPattern({ header: { 'x-thing': 'BETA' } }, r), 'values are case-sensitive');
  assert.ok(!matchesPattern({ header: { 'x-other': '' } }, r), 'a missing header never matches');
  assert.ok(matchesPattern({ body_contains: 'missing_sc' }, r));
  assert.ok(!matchesPattern({ body_contains: 'nope' }, r));
  assert.ok(matchesPattern({ status: 403, json: { error: 'missing_scope' }, header: { 'x-thing': 'alpha' }, body_contains: 'code' }, r));
  assert.ok(!matchesPattern({ status: 401, json: { error: 'missing_scope' } }, r));
  assert.ok(!matchesPattern({}, r), 'an empty pattern matches nothing');
  assert.ok(!matchesPattern({ required_scope_field: 'x' }, r));
  assert.ok(matchesPattern({ body_contains: '"ok":false' }, { status: 200, headers: {}, json: { ok: false } }), 'serialised json when there is no text');
  assert.ok(!matchesPattern({ json: { ok: false } }, { status: 200, headers: {} }), 'no body at all');
  assert.ok(!matchesPattern({ json: { constructor: 'x' } }, answer(200, {})), 'inherited members do not count');
});

test('needsBody: only when some pattern reads the body', () => {
  assert.equal(needsBody(noPatterns), false);
  assert.equal(needsBody({ auth_failures: [{ status: 401 }], scope_failures: [{ status: 403, header: { 'www-authenticate': 'x' } }] }), false);
  assert.equal(needsBody({ auth_failures: [{ status: 200, json: { ok: false } }], scope_failures: [] }), true);
  assert.equal(needsBody({ auth_failures: [], scope_failures: [{ body_contains: 'x' }] }), true);
  assert.equal(needsBody({ auth_failures: [], scope_failures: [{ body_contains: 'x' }] }, 500), true, 'a pattern without status applies to every status');
  const slack = catalog('slack');
  assert.equal(needsBody(slack), true);
  assert.equal(needsBody(slack, 200), true);
  assert.equal(needsBody(slack, 404), false);
});

test('parseBearerChallenge: examples', () => {
  assert.deepEqual(parseBearerChallenge(undefined), {});
  assert.deepEqual(parseBearerChallenge(''), {});
  assert.deepEqual(parseBearerChallenge('Basic realm="x"'), {});
  assert.deepEqual(parseBearerChallenge('Bearer'), {});
  assert.deepEqual(parseBearerChallenge('Bearer realm="example"'), { realm: 'example' });
  assert.deepEqual(parseBearerChallenge('Bearer realm="x", error="insufficient_scope", scope="a b"'), { realm: 'x', error: 'insufficient_scope', scope: 'a b' });
  assert.deepEqual(parseBearerChallenge('bearer ERROR=insufficient_scope,scope=a'), { error: 'insufficient_scope', scope: 'a' }, 'scheme and names in any case');
  assert.deepEqual(parseBearerChallenge('Bearer error = "invalid_token" , error_description="The access token expired"'), {
    error: 'invalid_token',
    error_description: 'The access token expired',
  });
  assert.deepEqual(parseBearerChallenge('Negotiate YIIB+w==, Basic realm="a, b", Bearer scope="x,y", error="insufficient_scope"'), {
    scope: 'x,y',
    error: 'insufficient_scope',
  });
  assert.deepEqual(parseBearerChallenge('Bearer realm="a", DPoP algs="ES256", Bearer error="insufficient_scope", scope="z"'), {
    error: 'insufficient_scope',
    scope: 'z',
  }, 'the Bearer challenge that carries an error wins');
  assert.deepEqual(parseBearerChallenge('Bearer scope="say \\"hi\\" \\\\ there"'), { scope: 'say "hi" \\ there' });
  assert.deepEqual(parseBearerChallenge('Bearer error="insufficient_scope", scope="unterminated'), { error: 'insufficient_scope', scope: 'unterminated' });
  assert.deepEqual(parseBearerChallenge(',, Bearer ,, error="x" ,'), { error: 'x' });
  assert.deepEqual(parseBearerChallenge('Bearer error="a", error="b"'), { error: 'a' }, 'first value of a repeated parameter');
});

// Generators for the round trip.
const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/);
const scheme = token.filter((s) => s.toLowerCase() !== 'bearer');
const quotable = fc.string({ unit: fc.constantFrom(...' !#$%&()*+,-./:;<=>?@[]^_`{|}~azAZ09"\\'.split('')), maxLength: 20 });
const quote = (s: string) => `"${s.replace(/(["\\])/g, '\\$1')}"`;
const ows = fc.constantFrom('', ' ', '  ', '\t');
/** A value written as a token when it is one (sometimes), else quoted. */
const written = (v: string, unquoted: boolean) => (unquoted && /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(v) ? v : quote(v));
const otherParam = fc.tuple(token.filter((t) => !['error', 'scope', 'realm', 'error_description'].includes(t.toLowerCase())), quotable, fc.boolean());
const otherChallenge = fc.oneof(
  fc.tuple(scheme, fc.array(otherParam, { maxLength: 3 })).map(([s, ps]) => (ps.length ? `${s} ${ps.map(([n, v, u]) => `${n}=${written(v, u)}`).join(', ')}` : s)),
  fc.tuple(scheme, fc.stringMatching(/^[A-Za-z0-9\-._~+/]{1,16}={0,2}$/)).map(([s, t68]) => `${s} ${t68}`),
);

test('property: parseBearerChallenge round-trips generated challenges', () => {
  fc.assert(
    fc.property(
      fc.record({
        error: fc.option(token, { nil: undefined }),
        scope: fc.option(fc.oneof(fc.array(token, { minLength: 1, maxLength: 4 }).map((xs) => xs.join(' ')), quotable), { nil: undefined }),
        realm: fc.option(quotable, { nil: undefined }),
      }),
      fc.array(otherParam, { maxLength: 2 }),
      fc.array(otherChallenge, { maxLength: 2 }),
      fc.array(otherChallenge, { maxLength: 2 }),
      fc.boolean(),
      ows,
      fc.constantFrom('Bearer', 'bearer', 'BEARER'),
      fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
      (mine, extra, before, after, unquoted, space, bearer, order) => {
        const params: string[] = [];
        if (mine.realm !== undefined) params.push(`realm=${written(mine.realm, unquoted)}`);
        if (mine.error !== undefined) params.push(`error=${written(mine.error, unquoted)}`);
        if (mine.scope !== undefined) params.push(`scope=${written(mine.scope, unquoted)}`);
        for (const [n, v, u] of extra) params.push(`${n}=${written(v, u)}`);
        // shuffle the parameters
        const shuffled = params.map((p, i) => [order[i % 8]!, i, p] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([, , p]) => p);
        const challenge = shuffled.length ? `${bearer} ${shuffled.join(`${space},${space}`)}` : bearer;
        const header = [...before, challenge, ...after].join(`${space},${space}`);
        const parsed = parseBearerChallenge(header);
        assert.equal(parsed.error, mine.error, header);
        assert.equal(parsed.scope, mine.scope, header);
        assert.equal(parsed.realm, mine.realm, header);
      },
    ),
    { numRuns: 3000 },
  );
});

test('property: parseBearerChallenge never throws', () => {
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...'Bearer error=",\\ \tscope'.split('')), maxLength: 40 }), (s) => {
      parseBearerChallenge(s);
    }),
  );
  fc.assert(fc.property(fc.string(), (s) => void parseBearerChallenge(s)));
});
