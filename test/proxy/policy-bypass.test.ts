import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import type { ScopeRule } from '../../src/providers/schema.ts';
import { parseProviderText } from '../../src/providers/loader.ts';
import { findGrantedScope, globSegments, queryAllows, queryParams, ruleMatches } from '../../src/proxy/policy.ts';
import { upstreamRequestHeaders } from '../../src/proxy/headers.ts';
import { createAgent, importConnection, startInstance, startLocalApi, type Instance, type LocalApi } from './local-api.ts';

// Scope policy bypasses (security review, medium 6). Reproduces, on the code before the fix:
// `X-HTTP-Method-Override: DELETE` forwarded on a GET the policy allowed (Google and Microsoft run
// the DELETE); `?alt=media` downloading file content under Drive's metadata-only scope (the query
// was never looked at); and `%2F` inside a segment matched by a single-segment `*`, which an
// upstream that decodes it reads as a deeper path.

const rule = (method: ScopeRule['method'], path: string, query?: ScopeRule['query']): ScopeRule => ({ method, path, ...(query ? { query } : {}) });

/** How the most lenient upstream reads a path: decoded until stable, NFKC, backslashes and lookalikes as '/'. */
function lenientSegments(path: string): string[] {
  let text = path;
  for (let i = 0; i < 20; i++) {
    let next: string;
    try {
      next = decodeURIComponent(text);
    } catch {
      break;
    }
    if (next === text) break;
    text = next;
  }
  text = text.normalize('NFKC').replace(/[\\\u2215\u2044\u29f5\u29f8\u29f9]/g, '/');
  return text.split('/').filter((s, i, all) => !(s === '' && (i === 0 || i === all.length - 1)));
}

/** A glob over plain segments (no encoding): `*` one non-empty segment, `**` any number (backtracking, memoised). */
function globAccepts(glob: readonly string[], segments: readonly string[]): boolean {
  const memo = new Map<string, boolean>();
  const at = (i: number, j: number): boolean => {
    const k = `${i},${j}`;
    let v = memo.get(k);
    if (v !== undefined) return v;
    const g = glob[i];
    if (g === undefined) v = j === segments.length;
    else if (g === '**') v = at(i + 1, j) || (j < segments.length && at(i, j + 1));
    else v = j < segments.length && (g === '*' ? segments[j] !== '' : segments[j] === g) && at(i + 1, j + 1);
    memo.set(k, v);
    return v;
  };
  return at(0, 0);
}

const hidden = ['a%2Fb', 'a%2fb', '%2F', 'a%252Fb', 'a%25252fb', 'a%5Cb', 'a%255cb', 'a%EF%BC%8Fb', 'x%E2%88%95y', '%2F%2F'];
const plain = ['a', 'b', 'files', 'x%20y', '%40me', '123'];
const pathSegment = fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...plain) }, { weight: 2, arbitrary: fc.constantFrom(...hidden) });
const globSegment = fc.oneof({ weight: 2, arbitrary: fc.constantFrom('a', 'b', 'files', '@me', '123') }, { weight: 3, arbitrary: fc.constant('*') }, { weight: 1, arbitrary: fc.constant('**') });

describe('an encoded "/" never widens a single-segment match', () => {
  test('property: a rule without ** that matches has exactly as many segments as the fully decoded path', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', 'files', '*'), { minLength: 1, maxLength: 4 }), fc.array(pathSegment, { minLength: 1, maxLength: 5 }), (g, p) => {
        const glob = `/${g.join('/')}`;
        const path = `/${p.join('/')}`;
        if (!ruleMatches(rule('GET', glob), 'GET', path)) return;
        // What a decoded-path `**` check would call deeper than the rule must never match it.
        assert.equal(lenientSegments(path).length, g.length, `${glob} matched ${path}, which decodes to ${lenientSegments(path).join('/')}`);
      }),
      { numRuns: 20_000 },
    );
  });

  test('property: whatever matches is accepted by the same glob however the upstream splits it', () => {
    fc.assert(
      fc.property(fc.array(globSegment, { maxLength: 5 }), fc.array(pathSegment, { maxLength: 6 }), (g, p) => {
        const glob = `/${g.join('/')}`;
        const path = `/${p.join('/')}`;
        if (!ruleMatches(rule('GET', glob), 'GET', path)) return;
        const strict = p.map((s) => decodeURIComponent(s));
        assert.ok(globAccepts(globSegments(glob), strict), `strict reading of ${path} refused by ${glob}`);
        assert.ok(globAccepts(globSegments(glob), lenientSegments(path)), `lenient reading of ${path} refused by ${glob}`);
      }),
      { numRuns: 20_000 },
    );
  });

  test('examples: %2F, double-encoded, backslash and lookalikes stay out of *; ** still spans them', () => {
    const m = (glob: string, path: string) => ruleMatches(rule('GET', glob), 'GET', path);
    for (const p of ['/files/a%2Fb', '/files/a%2fb', '/files/a%252Fb', '/files/a%25252Fb', '/files/a%5Cb', '/files/%2F..', '/files/a%EF%BC%8Fb', '/files/a%E2%88%95b']) {
      assert.ok(!m('/files/*', p), p);
      assert.ok(!m('/files/*/x', `${p}/x`), p);
      assert.ok(m('/files/**', p), p);
    }
    assert.ok(m('/files/*', '/files/a%20b'));
    assert.ok(m('/files/*', '/files/%40me'));
  });
});

describe('scope rules may constrain the query', () => {
  const meta = rule('GET', '/files/*', { alt: ['json'], $alt: ['json'] });

  test('alt=media in every spelling is refused under the metadata rule; alt=json and no alt pass', () => {
    const allows = (q: string) => ruleMatches(meta, 'GET', '/files/abc', q);
    assert.ok(allows(''));
    assert.ok(allows('?fields=name'));
    assert.ok(allows('alt=json'));
    assert.ok(allows('alt=%6Ason&fields=id'));
    for (const q of [
      'alt=media',
      'fields=id&alt=media',
      'ALT=media',
      'Alt=media',
      '%61lt=media',
      '%2561lt=media',
      'alt=%6Dedia',
      'alt=%256Dedia',
      'alt%20=media',
      '+alt=media',
      '$alt=media',
      '%24alt=media',
      '%2524ALT=media',
      'alt=json&alt=media',
      'alt=json;alt=media',
      'x=1;alt=media',
      'alt=media;x=1',
      'alt=JSON',
      'alt',
      'alt=',
    ]) {
      assert.ok(!allows(q), q);
    }
  });

  test('false forbids a parameter outright; unconstrained parameters pass', () => {
    const r = rule('POST', '/items', { _method: false });
    assert.ok(ruleMatches(r, 'POST', '/items', 'a=1'));
    assert.ok(!ruleMatches(r, 'POST', '/items', '_method=DELETE'));
    assert.ok(!ruleMatches(r, 'POST', '/items', '_METHOD'));
    assert.ok(!ruleMatches(r, 'POST', '/items', '%5Fmethod=x'));
  });

  const aliases = fc.constantFrom('alt', 'ALT', '%61lt', '%2561lt', 'a%6Ct', 'alt%20', '$alt', '%24alt', '%2524Alt');
  const others = fc.constantFrom('fields', 'q', 'salt', 'alter', 'al', 'alt_', '%24fields');
  const jsonSpellings = ['json', '%6Ason', 'js%6Fn'];
  const notJson = fc.constantFrom('media', 'MEDIA', '%6Dedia', '%256Dedia', 'json%00', 'JSON', '', 'proto', '%25256Dedia');
  const pair = fc.oneof(
    aliases.chain((n) => fc.oneof(fc.constantFrom(...jsonSpellings), notJson).map((v) => ({ text: `${n}=${v}`, bad: !jsonSpellings.includes(v) }))),
    others.chain((n) => fc.oneof(fc.constantFrom(...jsonSpellings), notJson).map((v) => ({ text: `${n}=${v}`, bad: false }))),
  );

  test('property: any query where some spelling of alt carries something other than json is refused', () => {
    fc.assert(
      fc.property(fc.array(pair, { maxLength: 5 }), fc.array(fc.constantFrom('&', ';'), { minLength: 5, maxLength: 5 }), (pairs, seps) => {
        const query = pairs.map((p, i) => (i === 0 ? p.text : `${seps[i]}${p.text}`)).join('');
        const allowed = ruleMatches(meta, 'GET', '/files/abc', query);
        if (pairs.some((p) => p.bad)) assert.ok(!allowed, `allowed ${query}`);
        // Joined with '&' only, a query whose every alt is json is not refused.
        else if (!query.includes(';')) assert.ok(allowed, `refused ${query}`);
      }),
      { numRuns: 20_000 },
    );
  });

  test('queryParams reads names decoded and lower-cased, values in every decoding', () => {
    assert.deepEqual(
      queryParams('%2524ALT=%256Dedia').map((p) => p.name),
      ['$alt'],
    );
    assert.ok(queryParams('alt=%256Dedia')[0]!.values.includes('media'));
    assert.ok(queryAllows({ alt: ['json'] }, queryParams('other=media')));
  });

  test('the google-drive catalog entry: alt=media and files.export only with a content scope', () => {
    const file = new URL('../../src/providers/catalog/google-drive.yaml', import.meta.url);
    const drive = parseProviderText(readFileSync(file, 'utf8'), file.pathname);
    const META = 'https://www.googleapis.com/auth/drive.metadata.readonly';
    const READ = 'https://www.googleapis.com/auth/drive.readonly';
    const scopeFor = (granted: string[], path: string, query = '') => findGrantedScope(drive.scopes, granted, 'GET', path, query);
    assert.equal(scopeFor([META], '/drive/v3/files/abc', '?fields=name'), META);
    assert.equal(scopeFor([META], '/drive/v3/files', '?q=trashed%3Dfalse'), META);
    assert.equal(scopeFor([META], '/drive/v3/files/abc/revisions/r1'), META);
    for (const q of ['?alt=media', '?%24alt=media', '?ALT=media', '?alt=json&alt=media', '?acknowledgeAbuse=true&alt=media']) {
      assert.equal(scopeFor([META], '/drive/v3/files/abc', q), undefined, q);
      assert.equal(scopeFor([META], '/drive/v3/files/abc/revisions/r1', q), undefined, q);
      assert.equal(scopeFor([META, READ], '/drive/v3/files/abc', q), READ, q);
    }
    assert.equal(scopeFor([META], '/drive/v3/files/abc/export', '?mimeType=text/plain'), undefined);
    assert.equal(scopeFor([READ], '/drive/v3/files/abc/export', '?mimeType=text/plain'), READ);
    assert.equal(scopeFor([META], '/drive/v3/files/a%2Fb'), undefined, 'an encoded slash is not a file id');
  });
});

test('method-override headers never leave Warrant', () => {
  const out = upstreamRequestHeaders({
    'x-http-method-override': 'DELETE',
    'x-http-method': 'DELETE',
    'x-method-override': 'DELETE',
    accept: 'application/json',
  });
  assert.deepEqual(out, { accept: 'application/json' });
});

describe('through the proxy: what the policy refuses never reaches the upstream', () => {
  let api: LocalApi;
  let w: Instance;
  let conn: string;
  before(async () => {
    api = await startLocalApi();
    w = await startInstance(api);
    conn = await importConnection(w.warrant);
  });
  after(async () => {
    await w?.close();
    await api?.close();
  });

  const call = (key: string, path: string, init: RequestInit = {}) =>
    fetch(`${w.base}/v1/proxy/${conn}${path}`, { ...init, headers: { authorization: `Bearer ${key}`, ...(init.headers as Record<string, string>) } });

  test('X-HTTP-Method-Override and friends are stripped: the upstream sees the method the policy checked', async () => {
    const { key } = await createAgent(w.warrant, conn, ['read', 'post_items'], 'overrider');
    api.seen.length = 0;
    const headers = { 'x-http-method-override': 'DELETE', 'X-HTTP-Method': 'PUT', 'x-method-override': 'PATCH', 'content-type': 'application/json' };
    const get = await call(key, '/items/1', { headers });
    assert.equal(get.status, 200, await get.text());
    const post = await call(key, '/items', { method: 'POST', headers, body: '{"name":"x"}' });
    assert.equal(post.status, 200, await post.text());
    assert.equal(api.seen.length, 2);
    for (const seen of api.seen) {
      for (const h of ['x-http-method-override', 'x-http-method', 'x-method-override']) assert.equal(seen.headers[h], undefined, `${h} reached the upstream`);
    }
    assert.deepEqual(api.seen.map((s) => s.method), ['GET', 'POST']);
  });

  test('alt=media under a metadata-only scope: policy_denied, the upstream never called', async () => {
    const { key } = await createAgent(w.warrant, conn, ['files.metadata'], 'metadata-only');
    api.seen.length = 0;
    const ok = await call(key, '/files/abc?fields=name');
    assert.equal(ok.status, 200, await ok.text());
    for (const q of ['alt=media', 'ALT=media', '%24alt=media', 'alt=json&alt=media', 'alt=json;alt=media', 'alt=%256Dedia']) {
      const res = await call(key, `/files/abc?${q}`);
      assert.equal(res.status, 403, q);
      assert.equal((await res.json()).code, 'policy_denied');
    }
    assert.equal(api.seen.length, 1, 'only the metadata call reached the upstream');
    const { key: content } = await createAgent(w.warrant, conn, ['files.content'], 'content');
    const download = await call(content, '/files/abc?alt=media');
    assert.equal(download.status, 200, await download.text());
  });

  test('%2F (plain, double-encoded, backslash) in a single-segment match: policy_denied, the upstream never called', async () => {
    const { key } = await createAgent(w.warrant, conn, ['projects.one'], 'one-segment');
    api.seen.length = 0;
    assert.equal((await call(key, '/projects/123')).status, 200);
    for (const p of ['/projects/group%2Fproject', '/projects/group%252Fproject', '/projects/group%5Cproject', '/projects/group%EF%BC%8Fproject']) {
      const res = await call(key, p);
      assert.equal(res.status, 403, p);
      assert.equal((await res.json()).code, 'policy_denied', p);
    }
    assert.equal(api.seen.length, 1);
  });
});
