import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { problemTypes } from '../../src/errors/index.ts';
import {
  WarrantError,
  UnknownProblemError,
  ScopeInsufficientError,
  RateLimitedError,
  InternalError,
  errorClasses,
  errorFromProblem,
  parseProblem,
  problemCodes,
  problemTypeBase,
} from '../../sdk/src/index.ts';

const problemHeaders = (extra: Record<string, string> = {}) => new Headers({ 'content-type': 'application/problem+json; charset=utf-8', ...extra });
const warrantProblem = (code: string, members: Record<string, unknown> = {}) => ({
  type: `${problemTypeBase}${code.replaceAll('_', '-')}`,
  title: 'a title',
  status: 400,
  code,
  instance: 'req_abc',
  ...members,
});

describe('@warrant/sdk errors: one class per problem code, from one table', () => {
  test('the SDK knows exactly the codes Warrant defines', () => {
    assert.deepEqual([...problemCodes].sort(), Object.keys(problemTypes).sort());
  });

  test('each code has its class: its name, code, nextStep and retryability; subclasses of WarrantError', () => {
    for (const code of problemCodes) {
      const cls = errorClasses[code];
      const err = new cls(warrantProblem(code), { status: 499 });
      assert.ok(err instanceof WarrantError && err instanceof cls);
      assert.equal(err.code, code);
      assert.equal(cls.code, code);
      assert.equal(err.status, 499, 'the response status wins over the body');
      assert.match(cls.name, /^[A-Z][A-Za-z]+Error$/);
      assert.equal(err.name, cls.name);
      assert.ok(err.nextStep.length > 20, `${code} has a next step`);
      assert.equal(err.nextStep, cls.nextStep);
      assert.equal(err.isRetryable, cls.isRetryable);
      assert.equal(err.requestId, 'req_abc');
      assert.ok(String(err).startsWith(`${cls.name}: ${code}: `));
    }
    assert.equal(InternalError.name, 'InternalError');
    const retryable = problemCodes.filter((c) => errorClasses[c].isRetryable).sort();
    assert.deepEqual(retryable, ['rate_limited', 'refresh_unavailable', 'unavailable', 'upstream_rate_limited', 'upstream_unavailable']);
  });

  test('members are camelCased and typed; wrong types are left out, not trusted', () => {
    const err = new ScopeInsufficientError(warrantProblem('scope_insufficient', { required_scope: 'items:write', granted_scopes: ['items:read'] }));
    assert.equal(err.requiredScope, 'items:write');
    assert.deepEqual(err.grantedScopes, ['items:read']);
    const odd = new ScopeInsufficientError(warrantProblem('scope_insufficient', { required_scope: 42, granted_scopes: ['a', 1] }));
    assert.equal(odd.requiredScope, undefined);
    assert.equal(odd.grantedScopes, undefined);
  });

  test('retryAfter: the member, else the Retry-After header (seconds or a date)', () => {
    assert.equal(new RateLimitedError(warrantProblem('rate_limited', { retry_after: 3 })).retryAfter, 3);
    assert.equal(new RateLimitedError(warrantProblem('rate_limited'), { headers: new Headers({ 'retry-after': '7' }) }).retryAfter, 7);
    const inTwenty = new Date(Date.now() + 20_000).toUTCString();
    const fromDate = new RateLimitedError(warrantProblem('rate_limited'), { headers: new Headers({ 'retry-after': inTwenty }) }).retryAfter!;
    assert.ok(fromDate >= 18 && fromDate <= 21, String(fromDate));
    assert.equal(new RateLimitedError(warrantProblem('rate_limited'), { headers: new Headers({ 'retry-after': 'soon' }) }).retryAfter, undefined);
  });

  test('an unknown code is an UnknownProblemError; a prototype name is not a code', () => {
    for (const code of ['brand_new_code', '__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      const err = errorFromProblem(warrantProblem(code), { status: 503 });
      assert.ok(err instanceof UnknownProblemError, code);
      assert.equal(err.code, code);
      assert.equal(err.isRetryable, true, 'a 503 may be retried');
    }
  });

  test('parseProblem: only Warrant problems; an upstream problem document or JSON passes through', () => {
    const res = (headers = problemHeaders()) => ({ status: 403, headers });
    assert.ok(parseProblem(res(), JSON.stringify(warrantProblem('policy_denied'))) instanceof errorClasses.policy_denied);
    // An upstream's own RFC 9457 problem, even one with a `code`, is its answer, not Warrant's.
    assert.equal(parseProblem(res(), JSON.stringify({ type: 'https://api.example.com/errors/nope', code: 'policy_denied', title: 'x' })), undefined);
    assert.equal(parseProblem(res(), JSON.stringify({ type: 'about:blank', title: 'Forbidden', status: 403 })), undefined);
    assert.equal(parseProblem(res(new Headers({ 'content-type': 'application/json' })), JSON.stringify(warrantProblem('policy_denied'))), undefined);
    assert.equal(parseProblem(res(), 'not json'), undefined);
    assert.equal(parseProblem(res(), '[1,2]'), undefined);
    assert.ok(parseProblem(res(new Headers({ 'content-type': 'Application/Problem+JSON' })), JSON.stringify(warrantProblem('conflict'))) instanceof WarrantError);
  });

  test('property: any JSON, any content type and status give a WarrantError or undefined, never a throw', () => {
    const contentType = fc.constantFrom('application/problem+json', 'application/problem+json; charset=utf-8', 'application/json', 'text/html', '', 'APPLICATION/PROBLEM+JSON ;x=y');
    const member = fc.oneof(fc.jsonValue(), fc.constant(undefined));
    const problemLike = fc.record(
      {
        type: fc.oneof(fc.constant(`${problemTypeBase}x`), fc.string(), fc.jsonValue()),
        code: fc.oneof(fc.constantFrom(...problemCodes, '__proto__', 'constructor', 'valueOf'), fc.string(), fc.jsonValue()),
        title: member,
        detail: member,
        status: member,
        instance: member,
        retry_after: member,
        required_scope: member,
        granted_scopes: member,
        reasons: member,
        errors: member,
      },
      { requiredKeys: [] },
    );
    const body = fc.oneof(fc.jsonValue().map((v) => JSON.stringify(v)), problemLike.map((v) => JSON.stringify(v)), fc.string());
    const retryAfter = fc.oneof(fc.constant(undefined), fc.string(), fc.nat().map(String), fc.date({ noInvalidDate: true }).map((d) => d.toUTCString()));
    fc.assert(
      fc.property(body, contentType, fc.integer({ min: 100, max: 599 }), retryAfter, (text, type, status, ra) => {
        const headers = new Headers({ 'content-type': type });
        if (ra !== undefined && /^[\t\x20-\x7e]*$/.test(ra)) headers.set('retry-after', ra);
        const out = parseProblem({ status, headers }, text);
        if (out === undefined) return;
        assert.ok(out instanceof WarrantError);
        assert.equal(typeof out.code, 'string');
        assert.equal(out.status, status);
        assert.equal(typeof out.message, 'string');
        assert.equal(typeof out.nextStep, 'string');
        inspect(out);
        String(out);
      }),
      { numRuns: 2_000 },
    );
  });

  test('docs: the SDK README lists every class and code', () => {
    const readme = readFileSync(new URL('../../sdk/README.md', import.meta.url), 'utf8');
    for (const code of problemCodes) {
      assert.ok(readme.includes(`\`${code}\``), `README lists ${code}`);
      assert.ok(readme.includes(`\`${errorClasses[code].name}\``), `README lists ${errorClasses[code].name}`);
    }
    assert.ok(readme.includes('`UnknownProblemError`'));
  });
});
