import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { ScopeRule } from '../../src/providers/schema.ts';
import { findGrantedScope, globMatches, methodMatches, pathSegments, ruleMatches } from '../../src/proxy/policy.ts';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
type Method = (typeof METHODS)[number];
const rule = (method: ScopeRule['method'], path: string): ScopeRule => ({ method, path });

/**
 * Reference implementation: decoded segments joined with NUL (which no generated segment holds),
 * the glob turned into a regular expression over that string. A segment that holds a '/' once
 * decoded becomes U+0001, which neither `*` nor a literal matches, only `**`.
 */
function referenceMatch(glob: string, path: string): boolean {
  const strip = (p: string) => {
    let s = p.startsWith('/') ? p.slice(1) : p;
    if (s.endsWith('/') && s.length > 0) s = s.slice(0, -1);
    return s === '' ? [] : s.split('/');
  };
  const subject = strip(path)
    .map((s) => `\u0000${decodeURIComponent(s).includes('/') ? '\u0001' : decodeURIComponent(s)}`)
    .join('');
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const source = strip(glob)
    .map((g) => (g === '**' ? '(?:\u0000[^\u0000]*)*' : g === '*' ? '\u0000[^\u0000\u0001]+' : `\u0000${escape(g)}`))
    .join('');
  return new RegExp(`^${source}$`, 'u').test(subject);
}

const literal = fc.constantFrom('a', 'b', 'items', 'a b', 'é', '@me', 'x:y');
const encodedOf: Record<string, string[]> = {
  a: ['a', '%61'],
  b: ['b', '%62'],
  items: ['items', 'it%65ms'],
  'a b': ['a%20b', 'a b'],
  é: ['é', '%C3%A9'],
  '@me': ['@me', '%40me'],
  'x:y': ['x:y', 'x%3Ay'],
};
const pathSegment = fc.oneof(
  literal.chain((l) => fc.constantFrom(...encodedOf[l]!)),
  fc.constantFrom('A', 'a%2Fb', 'c', ''),
);
const globSegment = fc.oneof({ weight: 3, arbitrary: literal }, { weight: 2, arbitrary: fc.constantFrom('*', '**') }, { weight: 1, arbitrary: fc.constant('A') });

test('property: the glob matcher agrees with a regex reference implementation', () => {
  fc.assert(
    fc.property(
      fc.array(globSegment, { maxLength: 6 }),
      fc.boolean(),
      fc.array(pathSegment, { maxLength: 7 }),
      fc.boolean(),
      (g, globTrailing, p, pathTrailing) => {
        const glob = `/${g.join('/')}${globTrailing && g.length ? '/' : ''}`;
        const path = `/${p.join('/')}${pathTrailing && p.length ? '/' : ''}`;
        assert.equal(ruleMatches(rule('GET', glob), 'GET', path), referenceMatch(glob, path), `${glob} vs ${path}`);
      },
    ),
    { numRuns: 20000 },
  );
});

test('property: a path matching /a/* has exactly two segments', () => {
  fc.assert(
    fc.property(fc.array(pathSegment, { maxLength: 6 }), fc.boolean(), (p, trailing) => {
      const path = `/a/${p.join('/')}${trailing ? '/' : ''}`;
      if (ruleMatches(rule('GET', '/a/*'), 'GET', path)) assert.equal(pathSegments(path).length, 2, path);
    }),
  );
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z%0-9/]{0,20}$/), (tail) => {
      const path = `/a/${tail}`;
      if (ruleMatches(rule('GET', '/a/*'), 'GET', path)) assert.equal(pathSegments(path).length, 2, path);
    }),
  );
});

test('property: a ** rule matches every extension of its prefix, and nothing outside it', () => {
  fc.assert(
    fc.property(
      fc.array(literal, { minLength: 1, maxLength: 3 }),
      fc.array(pathSegment, { maxLength: 5 }),
      (prefix, rest) => {
        const glob = `/${prefix.join('/')}/**`;
        const path = `/${[...prefix.map(encodeURIComponent), ...rest].join('/')}`;
        assert.ok(ruleMatches(rule('GET', glob), 'GET', path), `${glob} vs ${path}`);
        // another first segment never matches
        const other = `/zz/${[...prefix.slice(1).map(encodeURIComponent), ...rest].join('/')}`;
        assert.ok(!ruleMatches(rule('GET', glob), 'GET', other), `${glob} vs ${other}`);
      },
    ),
  );
});

test('property: a scope that is not granted never authorizes; no rule denies', () => {
  const scopeName = fc.constantFrom('read', 'write', 'admin', 'constructor', '__proto__', 'toString');
  fc.assert(
    fc.property(
      fc.dictionary(
        scopeName,
        fc.array(fc.record({ method: fc.oneof(fc.constantFrom<ScopeRule['method']>('*', ...METHODS), fc.subarray([...METHODS], { minLength: 1 })), path: fc.constantFrom('/**', '/a/*', '/a/**', '/b', '/') }), { maxLength: 3 }),
      ),
      fc.subarray(['read', 'write', 'admin', 'constructor', '__proto__', 'toString', 'unknown']),
      fc.constantFrom(...METHODS),
      fc.constantFrom('/', '', '/a', '/a/1', '/a/1/2', '/b', '/c'),
      (scopes, granted, method, path) => {
        const found = findGrantedScope(scopes, granted, method, path);
        if (found === undefined) {
          for (const s of granted) if (Object.hasOwn(scopes, s)) assert.ok(!scopes[s]!.some((r) => ruleMatches(r, method, path)));
          return;
        }
        assert.ok(granted.includes(found), 'only a granted scope authorizes');
        assert.ok(Object.hasOwn(scopes, found));
        assert.ok(scopes[found]!.some((r) => ruleMatches(r, method, path)));
        // it is the first one in granted order
        for (const s of granted.slice(0, granted.indexOf(found))) {
          assert.ok(!Object.hasOwn(scopes, s) || !scopes[s]!.some((r) => ruleMatches(r, method, path)));
        }
      },
    ),
    { numRuns: 3000 },
  );
});

test('globs: * is one non-empty segment, ** zero or more anywhere, literals are case-sensitive', () => {
  const m = (glob: string, path: string) => ruleMatches(rule('GET', glob), 'GET', path);
  assert.ok(m('/items/**', '/items'));
  assert.ok(m('/items/**', '/items/'));
  assert.ok(m('/items/**', '/items/1'));
  assert.ok(m('/items/**', '/items/1/x'));
  assert.ok(!m('/items/**', '/item'));
  assert.ok(!m('/items/**', '/itemsx/1'));
  assert.ok(!m('/items/**', '/'));
  assert.ok(m('/items/*', '/items/1'));
  assert.ok(m('/items/*', '/items/1/'), 'a trailing slash is ignored');
  assert.ok(!m('/items/*', '/items'));
  assert.ok(!m('/items/*', '/items/'));
  assert.ok(!m('/items/*', '/items/1/2'));
  assert.ok(!m('/items/*/x', '/items//x'), '* needs a non-empty segment');
  assert.ok(m('/**/comments', '/comments'));
  assert.ok(m('/**/comments', '/a/b/comments'));
  assert.ok(m('/a/**/b/**/c', '/a/b/c'));
  assert.ok(m('/a/**/b/**/c', '/a/x/b/y/z/c'));
  assert.ok(!m('/a/**/b/**/c', '/a/x/c'));
  assert.ok(m('/**', '/'));
  assert.ok(m('/**', ''));
  assert.ok(m('/**', '/anything/at/all'));
  assert.ok(m('/', '/'));
  assert.ok(m('/', ''));
  assert.ok(!m('/', '/a'));
  assert.ok(!m('/Items', '/items'));
  assert.ok(!m('/a*', '/ab'), 'a * inside a segment is literal');
  assert.ok(m('/a*', '/a*'));
  assert.ok(m('/items/', '/items'), 'a trailing slash on the rule is ignored too');
  assert.ok(m('/*/*/*/comments', '/a/b/c/comments'));
});

test('paths are compared decoded, segment by segment: %2F never makes a new segment, and only ** spans it', () => {
  const m = (glob: string, path: string) => ruleMatches(rule('GET', glob), 'GET', path);
  assert.ok(m('/projects/**', '/projects/group%2Fproject/repository/tree'));
  assert.ok(m('/projects/123/repository/**', '/projects/123/repository/tree'));
  assert.ok(!m('/projects/*/repository/**', '/projects/group%2Fproject/repository/tree'), 'a * never spans an encoded /');
  assert.ok(!m('/projects/*', '/projects/group%2Fproject'));
  assert.ok(!m('/projects/*/*', '/projects/group%2Fproject'), '%2F does not make a new segment');
  assert.ok(!m('/projects/group/project', '/projects/group%2Fproject'));
  assert.ok(m('/users/@me', '/users/%40me'));
  assert.ok(m('/users/@me/guilds/*/member', '/users/@me/guilds/123/member'));
  assert.ok(m('/items/a b', '/items/a%20b'));
  assert.ok(m('/items/é', '/items/%C3%A9'));
  assert.ok(m('/items/%41', '/items/%2541'), 'decoded once only');
  assert.ok(!m('/items/A', '/items/%2541'));
  assert.ok(m('/items/*', '/items/%zz'), 'a malformed escape stays as written');
  assert.ok(m('/items/%zz', '/items/%zz'));
});

test('methods: one, a list, *, HEAD where GET', () => {
  assert.ok(methodMatches(rule('GET', '/'), 'GET'));
  assert.ok(methodMatches(rule('GET', '/'), 'get'));
  assert.ok(methodMatches(rule('GET', '/'), 'HEAD'));
  assert.ok(!methodMatches(rule('HEAD', '/'), 'GET'));
  assert.ok(!methodMatches(rule('GET', '/'), 'POST'));
  assert.ok(!methodMatches(rule('GET', '/'), 'OPTIONS'));
  assert.ok(methodMatches(rule(['POST', 'PUT', 'PATCH', 'DELETE'], '/'), 'PATCH'));
  assert.ok(!methodMatches(rule(['POST', 'PUT', 'PATCH', 'DELETE'], '/'), 'GET'));
  assert.ok(!methodMatches(rule(['POST', 'PUT'], '/'), 'HEAD'));
  assert.ok(methodMatches(rule(['GET', 'POST'], '/'), 'HEAD'));
  assert.ok(methodMatches(rule('*', '/'), 'DELETE'));
  assert.ok(methodMatches(rule('*', '/'), 'PROPFIND'));
  fc.assert(
    fc.property(fc.subarray([...METHODS], { minLength: 1 }), fc.constantFrom<Method>(...METHODS), (list, method) => {
      const expected = list.includes(method) || (method === 'HEAD' && list.includes('GET'));
      assert.equal(ruleMatches(rule(list, '/x'), method, '/x'), expected);
    }),
  );
});

test('findGrantedScope: first granted scope in grant order with a matching rule', () => {
  const scopes: Record<string, ScopeRule[]> = {
    'items:read': [rule('GET', '/items/**')],
    'items:write': [rule(['POST', 'PUT', 'PATCH', 'DELETE'], '/items/**')],
    admin: [rule('*', '/**')],
    empty: [],
  };
  assert.equal(findGrantedScope(scopes, ['items:read'], 'GET', '/items/1'), 'items:read');
  assert.equal(findGrantedScope(scopes, ['items:read'], 'HEAD', '/items/1'), 'items:read');
  assert.equal(findGrantedScope(scopes, ['items:read'], 'DELETE', '/items/1'), undefined);
  assert.equal(findGrantedScope(scopes, ['items:read', 'items:write'], 'DELETE', '/items/1'), 'items:write');
  assert.equal(findGrantedScope(scopes, ['admin', 'items:read'], 'GET', '/items/1'), 'admin');
  assert.equal(findGrantedScope(scopes, ['items:read', 'admin'], 'GET', '/items/1'), 'items:read');
  assert.equal(findGrantedScope(scopes, [], 'GET', '/items/1'), undefined);
  assert.equal(findGrantedScope(scopes, ['empty'], 'GET', '/items/1'), undefined);
  assert.equal(findGrantedScope(scopes, ['unknown'], 'GET', '/items/1'), undefined);
  assert.equal(findGrantedScope(scopes, ['constructor', '__proto__', 'toString', 'hasOwnProperty'], 'GET', '/items/1'), undefined);
  assert.equal(findGrantedScope({}, ['items:read'], 'GET', '/items/1'), undefined);
});

test('globMatches handles many ** without blowing up', () => {
  const glob = Array.from({ length: 40 }, () => '**').concat('z');
  const segments = Array.from({ length: 200 }, () => 'a');
  const t = Date.now();
  assert.equal(globMatches(glob, segments), false);
  assert.equal(globMatches(glob, [...segments, 'z']), true);
  assert.ok(Date.now() - t < 500);
});
