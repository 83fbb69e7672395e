import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WarrantError } from '../../src/errors/index.ts';
import { decodeFully, resolveTarget, resolveTargetWithPath } from '../../src/proxy/target.ts';

const BASES = ['https://api.x.com/v2', 'https://api.x.com/v2/', 'https://api.x.com', 'http://127.0.0.1:8080/a/b%20c/'];

/** Independent of the module: bytewise (latin-1) decoding is enough to find ASCII '.', '/', '\'. */
function referenceDecode(s: string): string {
  for (;;) {
    const next = s.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
    if (next === s) return s;
    s = next;
  }
}
const hasDotDotSegment = (p: string) =>
  referenceDecode(p)
    .replaceAll('\\', '/')
    .split('/')
    .some((seg) => seg === '..' || seg === '.');

function assertRefused(fn: () => unknown, message?: string) {
  assert.throws(
    fn,
    (err: unknown) => err instanceof WarrantError && err.code === 'invalid_request' && err.members.field === 'path',
    message,
  );
}

function basePathOf(base: string) {
  return new URL(base).pathname.replace(/\/+$/, '');
}

// The alphabet of the brief, weighted towards the pieces bypasses are made of.
const piece = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('.', '/', '\\', '%', '2', 'e', 'E', 'f', 'F', '5', 'c', 'C', '@', ':', ';', 'a', 'u', '0', '4') },
  { weight: 3, arbitrary: fc.constantFrom('..', '%2e', '%2E', '%25', '%2f', '%2F', '%5c', '%5C', '%c0%ae', '%u002e', '%00', '%40', 'http:', '//', '%252e') },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 3 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 2 }) },
);
const rawPath = fc.tuple(fc.constantFrom('/', '', '\\', '/a/'), fc.array(piece, { maxLength: 14 })).map(([start, ps]) => start + ps.join(''));

test('property: a path is refused (invalid_request, field path) or stays under the base', () => {
  fc.assert(
    fc.property(fc.constantFrom(...BASES), rawPath, (base, raw) => {
      let url: URL;
      try {
        url = resolveTarget(base, raw);
      } catch (err) {
        assert.ok(err instanceof WarrantError, `not a WarrantError: ${String(err)}`);
        assert.equal(err.code, 'invalid_request');
        assert.equal(err.members.field, 'path');
        return;
      }
      const b = new URL(base);
      const basePath = basePathOf(base);
      assert.equal(url.origin, b.origin);
      assert.ok(url.pathname === basePath || url.pathname.startsWith(`${basePath}/`) || url.pathname === b.pathname, `${url.pathname} not under ${basePath}`);
      assert.ok(url.pathname.startsWith(b.pathname.replace(/\/$/, '')));
      assert.ok(!hasDotDotSegment(url.pathname), `dot segment in ${url.pathname}`);
      assert.ok(!hasDotDotSegment(raw), `accepted a raw path with dot segments: ${raw}`);
      assert.equal(url.hash, '');
    }),
    { numRuns: 5000 },
  );
});

test('property: legitimate paths are accepted and forwarded with their own encoding', () => {
  const first = fc.stringMatching(/^[a-z][a-z0-9_-]{0,8}$/);
  const segment = fc
    .array(
      fc.oneof(
        fc.constantFrom('a', 'Z', '0', '-', '_', '~', '.', ':', '!', '$', '(', ')', '*', '+', ',', '=', '@', '%20', '%2F', '%40', '%C3%A9', '%E6%97%A5'),
        fc.constantFrom('é', '日本', 'Ω', '😀'),
      ),
      { minLength: 1, maxLength: 6 },
    )
    .map((xs) => xs.join(''))
    // what a lenient upstream would read as a dot segment is not legitimate
    .filter((s) => !referenceDecode(s).split('/').some((x) => /^\.+$/.test(x.trim())));
  fc.assert(
    fc.property(fc.constantFrom(...BASES), first, fc.array(segment, { maxLength: 5 }), fc.boolean(), (base, head, segs, trailing) => {
      const raw = `/${[head, ...segs].join('/')}${trailing ? '/' : ''}`;
      const { url, path } = resolveTargetWithPath(base, raw);
      const expected = basePathOf(base) + raw;
      assert.equal(decodeURIComponent(url.pathname), decodeURIComponent(expected));
      // ASCII the agent wrote is forwarded byte for byte (only non-ASCII gets encoded).
      assert.equal(url.pathname, new URL(`https://h${expected}`).pathname);
      assert.ok(url.pathname.endsWith(raw.replace(/[^\x00-\x7f]/gu, (c) => encodeURIComponent(c))));
      assert.equal(path, url.pathname.slice(basePathOf(base).length));
    }),
    { numRuns: 2000 },
  );
});

test('joins the base and the path, with or without a trailing slash on the base', () => {
  assert.equal(resolveTarget('https://api.x.com/v2', '/items/1').href, 'https://api.x.com/v2/items/1');
  assert.equal(resolveTarget('https://api.x.com/v2/', '/items/1').href, 'https://api.x.com/v2/items/1');
  assert.equal(resolveTarget('https://api.x.com', '/items/1').href, 'https://api.x.com/items/1');
  assert.equal(resolveTarget('https://api.x.com/v2', '').href, 'https://api.x.com/v2');
  assert.equal(resolveTarget('https://api.x.com/v2/', '').href, 'https://api.x.com/v2/');
  assert.equal(resolveTarget('https://api.x.com/v2', '/').href, 'https://api.x.com/v2/');
  assert.equal(resolveTarget('https://api.x.com/v2', 'items').href, 'https://api.x.com/v2/items');
  assert.equal(resolveTarget('http://127.0.0.1:9999/api/1.0', '/x').href, 'http://127.0.0.1:9999/api/1.0/x');
});

test('allowed paths keep the agent encoding; the query is appended', () => {
  const base = 'https://api.x.com/v2';
  assert.equal(resolveTarget(base, '/items').href, 'https://api.x.com/v2/items');
  assert.equal(resolveTarget(base, '/items/a%20b').href, 'https://api.x.com/v2/items/a%20b');
  assert.equal(resolveTarget(base, '/items', 'x=1').href, 'https://api.x.com/v2/items?x=1');
  assert.equal(resolveTarget(base, '/items', 'q=a%20b&r=%2e%2e').href, 'https://api.x.com/v2/items?q=a%20b&r=%2e%2e');
  assert.equal(resolveTarget(base, '/items', '').href, 'https://api.x.com/v2/items');
  assert.equal(resolveTarget(base, '', 'x=1').href, 'https://api.x.com/v2?x=1');
  assert.equal(resolveTarget(base, '/items', 'a=1#frag').href, 'https://api.x.com/v2/items?a=1%23frag');
  assert.equal(resolveTarget('https://api.x.com/v2?key=k', '/items', 'x=1').href, 'https://api.x.com/v2/items?key=k&x=1');
  assert.equal(resolveTarget(base, '/items/日本/café').pathname, '/v2/items/%E6%97%A5%E6%9C%AC/caf%C3%A9');
  assert.equal(resolveTarget(base, '/items/%E6%97%A5%E6%9C%AC').pathname, '/v2/items/%E6%97%A5%E6%9C%AC');
  assert.equal(resolveTarget(base, '/projects/group%2Fproject/issues').pathname, '/v2/projects/group%2Fproject/issues');
  assert.equal(resolveTarget(base, '/items/a%2fb').pathname, '/v2/items/a%2fb', 'the case of escapes is kept');
  assert.equal(resolveTarget(base, '/people:batchGet').pathname, '/v2/people:batchGet');
  assert.equal(resolveTarget(base, '/spreadsheets/1/values/A1:B2:append').pathname, '/v2/spreadsheets/1/values/A1:B2:append');
  assert.equal(resolveTarget(base, '/sites/https%3A%2F%2Fexample.com%2F/searchAnalytics').pathname, '/v2/sites/https%3A%2F%2Fexample.com%2F/searchAnalytics');
  assert.equal(resolveTarget(base, '/repos/o/r/compare/main...dev').pathname, '/v2/repos/o/r/compare/main...dev');
  assert.equal(resolveTarget(base, '/.well-known/openid-configuration').pathname, '/v2/.well-known/openid-configuration');
  assert.equal(resolveTarget(base, '/items/x;v=1').pathname, '/v2/items/x;v=1');
  assert.equal(resolveTarget(base, '/items/100%25').pathname, '/v2/items/100%25');
  assert.equal(resolveTarget(base, '/items/a b ').pathname, '/v2/items/a%20b%20', 'raw spaces are encoded, not trimmed');
});

test('@ is refused in the first segment, allowed further in (Discord /users/@me, calendar ids)', () => {
  const base = 'https://discord.com/api/v10';
  assert.equal(resolveTarget(base, '/users/@me/guilds').pathname, '/api/v10/users/@me/guilds');
  assert.equal(resolveTarget(base, '/calendars/alice%40example.com/events').pathname, '/api/v10/calendars/alice%40example.com/events');
  for (const p of ['/@evil.com', '/user@evil.com/x', '/%40evil.com', '/%2540evil', '/a%20@b', '/a%2F@b/x', '/＠evil']) assertRefused(() => resolveTarget(base, p), p);
  assertRefused(() => resolveTarget(base, '/users/@me', undefined, { refuseAtSign: 'anywhere' }));
  assertRefused(() => resolveTarget(base, '/users/%40me', undefined, { refuseAtSign: 'anywhere' }));
});

test('classic escapes out of the base are refused', () => {
  const bypasses = [
    // absolute URLs and scheme-relative starts
    'http://evil.com',
    'https:evil.com',
    'javascript:alert(1)',
    '//evil.com/x',
    '\\\\evil.com\\x',
    '/\\evil.com',
    '\\/evil.com',
    '/%2F%2Fevil.com',
    '/%2f/evil.com',
    '/%5C%5Cevil.com',
    '/%5c/evil.com',
    '/http://evil.com',
    '/https:%2F%2Fevil.com',
    '/http:\\\\evil.com',
    // dot segments, plain and encoded once, twice, thrice
    '/..',
    '/../x',
    '/a/../../x',
    '/a/./b',
    '/.',
    '/a/.',
    '/%2e%2e/x',
    '/%2E%2E/x',
    '/.%2e/x',
    '/%2e./x',
    '/%2e/x',
    '/%252e%252e/x',
    '/%25252e%25252e/x',
    '/%%32%65%%32%65/x',
    '/..%2fx',
    '/..%2Fx',
    '/..%252fx',
    '/%2e%2e%2fx',
    '/%2e%2e%5cx',
    '/..%5cx',
    '/..\\x',
    '/a\\..\\..\\x',
    '/%2e%2e%255cx',
    // path parameters and other "dot-like" heads
    '/..;/x',
    '/a/..;/x',
    '/%2e%2e;/x',
    '/..;jsessionid=1/x',
    '/.;/x',
    '/..%3b/x',
    '/..%3F/x',
    '/..%23/x',
    '/.. /x',
    '/..%20/x',
    '/...',
    // non-UTF-8 / Unicode look-alikes
    '/%c0%ae%c0%ae/x',
    '/%e0%80%ae%e0%80%ae/x',
    '/%c0%af',
    '/%ef%bc%8e%ef%bc%8e/x',
    '/．．/x',
    '/‥/x',
    '/%u002e%u002e/x',
    '/%U002E%U002E/x',
    '/%2e%2e%u2215x',
    // control characters, raw and encoded
    '/a%00b',
    '/a\u0000b',
    '/a%0d%0aHost:%20evil',
    '/a\r\nb',
    '/a\tb',
    '/a%7f',
    '/a%2500',
    '/a%C2%85',
    // raw ? and #: the query is passed separately
    '/a?b=1',
    '/a#b',
  ];
  for (const base of BASES) for (const p of bypasses) assertRefused(() => resolveTarget(base, p), `${base} + ${JSON.stringify(p)}`);
});

test('the relative path handed to the policy is the forwarded one', () => {
  assert.deepEqual(
    ((r) => ({ href: r.url.href, path: r.path }))(resolveTargetWithPath('https://api.x.com/v2', '/items\\1')),
    { href: 'https://api.x.com/v2/items/1', path: '/items/1' },
  );
  assert.equal(resolveTargetWithPath('https://api.x.com/v2', '').path, '');
  assert.equal(resolveTargetWithPath('https://api.x.com/v2/', '').path, '/');
  assert.equal(resolveTargetWithPath('https://api.x.com', '/a%20b').path, '/a%20b');
});

test('decodeFully decodes until stable and leaves malformed escapes alone', () => {
  assert.equal(decodeFully('%252e%252e'), '..');
  assert.equal(decodeFully('%25252e'), '.');
  assert.equal(decodeFully('%%32%65'), '.');
  assert.equal(decodeFully('a%20b%zz%'), 'a b%zz%');
  assert.equal(decodeFully('%E6%97%A5'), '日');
  assert.equal(decodeFully('%u0041'), 'A');
  assert.equal(decodeFully('%C0%AE'), '\uFFFD\uFFFD');
  assert.equal(decodeFully('%EF%BB%BFx'), '\uFEFFx', 'a BOM is kept');
});

test('a base URL that is not http(s) is a server error, not the agent fault', () => {
  assert.throws(() => resolveTarget('not a url', '/x'), (e: unknown) => e instanceof WarrantError && e.code === 'internal_error');
  assert.throws(() => resolveTarget('ftp://x.com/', '/x'), (e: unknown) => e instanceof WarrantError && e.code === 'internal_error');
});

test('nesting deeper than 16 layers of percent-encoding is refused without decoding it all', () => {
  const deep = `/${'%25'.repeat(1)}${'25'.repeat(20)}2e`;
  assertRefused(() => resolveTarget('https://api.x.com', deep));
  const huge = `/x${'%25'}${'25'.repeat(5000)}41`;
  const t = Date.now();
  assertRefused(() => resolveTarget('https://api.x.com', huge));
  assert.ok(Date.now() - t < 1000);
  assert.equal(decodeFully('%2525252541'), 'A');
});
