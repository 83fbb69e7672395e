import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { ResponsePattern } from '../../src/providers/schema.ts';
import { firstScopeAt, jsonValuesAt } from '../../src/providers/index.ts';
import { classifyUpstream, matchesPattern } from '../../src/proxy/index.ts';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { startLocalApi, type LocalApi, type Seen } from './local-api.ts';

// Real providers say "expired" and "missing scope" inside nested error objects: Google
// `error.details[].reason`, Microsoft `error.code`, Linear `errors[].extensions.code`, HubSpot
// `errors[].context.requiredGranularScopes`. Response patterns read them with dot paths.

const GOOGLE_SCOPE = { error: { code: 403, status: 'PERMISSION_DENIED', message: 'Request had insufficient authentication scopes.', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'ACCESS_TOKEN_SCOPE_INSUFFICIENT', domain: 'googleapis.com' }] } };
const MICROSOFT_EXPIRED = { error: { code: 'InvalidAuthenticationToken', message: 'Lifetime validation failed, the token is expired.' } };
const LINEAR_EXPIRED = { errors: [{ message: 'Authentication required', extensions: { code: 'AUTHENTICATION_ERROR', type: 'authentication error' } }] };
const HUBSPOT_SCOPE = { status: 'error', category: 'MISSING_SCOPES', errors: [{ message: 'missing', context: { requiredGranularScopes: ['crm.objects.contacts.read', 'crm.schemas.contacts.read'] } }] };
const DROPBOX_SCOPE = { error_summary: 'missing_scope/..', error: { '.tag': 'missing_scope', required_scope: 'files.content.read' } };

const answer = (status: number, json: unknown) => ({ status, headers: {}, json, text: JSON.stringify(json) });

test('jsonValuesAt: examples', () => {
  assert.deepEqual(jsonValuesAt(GOOGLE_SCOPE, 'error.details[].reason'), ['ACCESS_TOKEN_SCOPE_INSUFFICIENT']);
  assert.deepEqual(jsonValuesAt(GOOGLE_SCOPE, 'error.code'), [403]);
  assert.deepEqual(jsonValuesAt(LINEAR_EXPIRED, 'errors[].extensions.code'), ['AUTHENTICATION_ERROR']);
  assert.deepEqual(jsonValuesAt({ errors: [{ x: 1 }, 'text', null, { extensions: { code: 'A' } }, { extensions: { code: 'B' } }] }, 'errors[].extensions.code'), ['A', 'B']);
  assert.deepEqual(jsonValuesAt({ grid: [[{ v: 1 }], [{ v: 2 }, { w: 3 }]] }, 'grid[][].v'), [1, 2], '[][] for arrays of arrays');
  assert.deepEqual(jsonValuesAt({ errors: { extensions: { code: 'A' } } }, 'errors[].extensions.code'), [], '[] only enters an array');
  assert.deepEqual(jsonValuesAt({ errors: [{ code: 'A' }] }, 'errors.code'), [], 'an array is entered only where the path says []');
  assert.deepEqual(jsonValuesAt({ 'error.code': 'flat', error: { code: 'nested' } }, 'error.code'), ['flat', 'nested'], 'a member spelled with the dots comes first');
  assert.deepEqual(jsonValuesAt(DROPBOX_SCOPE, 'error..tag'), ['missing_scope'], "Dropbox's .tag");
  assert.deepEqual(jsonValuesAt({ a: null }, 'a'), [null]);
  assert.deepEqual(jsonValuesAt({ a: null }, 'a.b'), []);
  assert.deepEqual(jsonValuesAt({}, 'constructor'), [], 'inherited members do not count');
  assert.deepEqual(jsonValuesAt({ a: {} }, 'a.toString'), []);
  assert.deepEqual(jsonValuesAt(JSON.parse('{"__proto__":{"x":1}}'), '__proto__.x'), [1], 'an own __proto__ member is a member');
  assert.deepEqual(jsonValuesAt([{ a: 1 }], 'a'), [], 'a root array is entered only where the path starts with []');
  const SALESFORCE_EXPIRED = [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }];
  assert.deepEqual(jsonValuesAt(SALESFORCE_EXPIRED, '[].errorCode'), ['INVALID_SESSION_ID'], "Salesforce's top-level array");
  assert.deepEqual(jsonValuesAt([[{ a: 1 }], 'x', { a: 2 }], '[].a'), [2]);
  assert.deepEqual(jsonValuesAt([[{ a: 1 }]], '[][].a'), [1]);
  assert.deepEqual(jsonValuesAt([1, 2], '[]'), [1, 2]);
  assert.deepEqual(jsonValuesAt({ a: 1 }, '[].a'), [], '[] at the root only enters an array');
  assert.deepEqual(jsonValuesAt('text', 'a'), []);
});

test('GitHub: a 403/404 whose X-Accepted-OAuth-Scopes names none of the X-OAuth-Scopes is a missing scope; otherwise it passes', () => {
  const github = { auth_failures: [], scope_failures: [{ status: [403, 404], accepted_scopes_header: 'X-Accepted-OAuth-Scopes', granted_scopes_header: 'X-OAuth-Scopes' }] as ResponsePattern[] };
  const gh = (status: number, headers: Record<string, string>) => ({ status, headers, json: { message: 'Not Found' }, text: '{"message":"Not Found"}' });
  assert.deepEqual(classifyUpstream(github, gh(404, { 'x-accepted-oauth-scopes': 'repo', 'x-oauth-scopes': 'gist, read:user' })), { kind: 'scope_failure', requiredScope: 'repo' });
  assert.deepEqual(classifyUpstream(github, gh(403, { 'x-accepted-oauth-scopes': 'admin:org, write:org', 'x-oauth-scopes': '' })), { kind: 'scope_failure', requiredScope: 'admin:org write:org' });
  assert.deepEqual(classifyUpstream(github, gh(403, { 'x-accepted-oauth-scopes': 'repo', 'x-oauth-scopes': 'repo, gist' })), { kind: 'ok' }, 'held: a plain permission error');
  assert.deepEqual(classifyUpstream(github, gh(404, { 'x-oauth-scopes': 'gist' })), { kind: 'ok' }, 'no accepted scopes named: a plain 404');
  assert.deepEqual(classifyUpstream(github, gh(200, { 'x-accepted-oauth-scopes': 'repo', 'x-oauth-scopes': 'gist' })), { kind: 'ok' }, 'status must match');
});

test('firstScopeAt: the first string or string list a path reaches', () => {
  assert.equal(firstScopeAt(HUBSPOT_SCOPE, 'errors[].context.requiredGranularScopes'), 'crm.objects.contacts.read crm.schemas.contacts.read');
  assert.equal(firstScopeAt(DROPBOX_SCOPE, 'error.required_scope'), 'files.content.read');
  assert.equal(firstScopeAt({ errors: [{ context: {} }, { context: { needed: '' } }, { context: { needed: [1] } }, { context: { needed: 'b' } }, { context: { needed: 'c' } }] }, 'errors[].context.needed'), 'b');
  assert.equal(firstScopeAt({ needed: [] }, 'needed'), undefined);
  assert.equal(firstScopeAt({ needed: 7 }, 'needed'), undefined);
});

test('matchesPattern and classifyUpstream with nested paths: the shapes of Google, Microsoft, Linear, HubSpot, Dropbox', () => {
  const google = { auth_failures: [], scope_failures: [{ status: 403, json: { 'error.details[].reason': 'ACCESS_TOKEN_SCOPE_INSUFFICIENT' } }] as ResponsePattern[] };
  assert.deepEqual(classifyUpstream(google, answer(403, GOOGLE_SCOPE)), { kind: 'scope_failure' });
  assert.deepEqual(classifyUpstream(google, answer(403, { error: { code: 403, status: 'PERMISSION_DENIED', details: [{ reason: 'RATE_LIMIT_EXCEEDED' }] } })), { kind: 'ok' });
  const microsoft = {
    auth_failures: [{ status: 401, json: { 'error.code': ['InvalidAuthenticationToken', 'CompactToken.InvalidToken'] } }] as ResponsePattern[],
    scope_failures: [{ status: 403, json: { 'error.code': ['ErrorAccessDenied', 'Authorization_RequestDenied'] } }] as ResponsePattern[],
  };
  assert.ok(matchesPattern(microsoft.auth_failures[0]!, answer(401, MICROSOFT_EXPIRED)));
  assert.ok(matchesPattern(microsoft.auth_failures[0]!, answer(401, { error: { code: 'CompactToken.InvalidToken' } })), 'a value with a dot is a value');
  assert.deepEqual(classifyUpstream(microsoft, answer(403, { error: { code: 'ErrorAccessDenied' } })), { kind: 'scope_failure' });
  assert.deepEqual(classifyUpstream(microsoft, answer(403, { error: { code: 'Forbidden' } })), { kind: 'ok' });
  const linear = { auth_failures: [{ status: [200, 400, 401], json: { 'errors[].extensions.code': 'AUTHENTICATION_ERROR' } }] as ResponsePattern[], scope_failures: [] };
  assert.deepEqual(classifyUpstream(linear, answer(200, { data: null, ...LINEAR_EXPIRED })), { kind: 'auth_failure' });
  assert.deepEqual(classifyUpstream(linear, answer(400, { errors: [{ extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }, { extensions: { code: 'AUTHENTICATION_ERROR' } }] })), { kind: 'auth_failure' }, 'any element');
  assert.deepEqual(classifyUpstream(linear, answer(400, { errors: [{ extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }] })), { kind: 'ok' });
  const hubspot = { auth_failures: [], scope_failures: [{ status: 403, json: { category: 'MISSING_SCOPES' }, required_scope_field: 'errors[].context.requiredGranularScopes' }] as ResponsePattern[] };
  assert.deepEqual(classifyUpstream(hubspot, answer(403, HUBSPOT_SCOPE)), { kind: 'scope_failure', requiredScope: 'crm.objects.contacts.read crm.schemas.contacts.read' });
  const dropbox = { auth_failures: [], scope_failures: [{ status: 401, json: { 'error..tag': 'missing_scope' }, required_scope_field: 'error.required_scope' }] as ResponsePattern[] };
  assert.deepEqual(classifyUpstream(dropbox, answer(401, DROPBOX_SCOPE)), { kind: 'scope_failure', requiredScope: 'files.content.read' }, 'a 401 that is a scope failure');
  // Every member of `json` must match, each anywhere its path reaches.
  assert.ok(matchesPattern({ json: { 'error.code': 403, 'error.status': 'PERMISSION_DENIED' } }, answer(403, GOOGLE_SCOPE)));
  assert.ok(!matchesPattern({ json: { 'error.code': 403, 'error.status': 'UNAUTHENTICATED' } }, answer(403, GOOGLE_SCOPE)));
  assert.ok(!matchesPattern({ json: { 'error.code': '403' } }, answer(403, GOOGLE_SCOPE)), 'scalars compared strictly');
  assert.ok(!matchesPattern({ json: { 'error.absent': null } }, answer(403, GOOGLE_SCOPE)), 'a missing member is not null');
});

// Property tests of the path reader. Documents have keys with dots (and empty keys), so the
// reading of a member spelled with dots is exercised along with nested paths.
const key = fc.stringMatching(/^[a-z.]{0,3}$/);
const scalar = fc.oneof(fc.string({ maxLength: 4 }), fc.integer({ min: -5, max: 5 }), fc.boolean(), fc.constant(null));
const { tree } = fc.letrec<{ tree: unknown; array: unknown[]; object: Record<string, unknown> }>((tie) => ({
  tree: fc.oneof({ depthSize: 'small' }, scalar, tie('array'), tie('object')),
  array: fc.array(tie('tree'), { maxLength: 4 }),
  object: fc.dictionary(key, tie('tree'), { maxKeys: 4 }),
}));
const documentArb = fc.dictionary(key, tree, { maxKeys: 5 });
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Follows `choices` from the root; returns the path written for that route and the value it ends at. */
function route(root: Record<string, unknown>, choices: readonly number[]): { path: string; value: unknown } | undefined {
  const pieces: string[] = [];
  let node: unknown = root;
  for (const c of choices) {
    if (isObject(node)) {
      const keys = Object.keys(node);
      if (!keys.length) break;
      const k = keys[c % keys.length]!;
      pieces.push(k);
      node = node[k];
    } else if (Array.isArray(node) && node.length) {
      pieces[pieces.length - 1] += '[]';
      node = node[c % node.length];
    } else break;
  }
  return pieces.length ? { path: pieces.join('.'), value: node } : undefined;
}

function subValues(root: unknown, into = new Set<unknown>()): Set<unknown> {
  into.add(root);
  if (Array.isArray(root)) for (const v of root) subValues(v, into);
  else if (isObject(root)) for (const v of Object.values(root)) subValues(v, into);
  return into;
}

test('property: the path of any route into a document reaches the value at its end', () => {
  fc.assert(
    fc.property(documentArb, fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), (doc, choices) => {
      const r = route(doc, choices);
      fc.pre(r !== undefined);
      assert.ok(jsonValuesAt(doc, r!.path).some((v) => v === r!.value), r!.path);
    }),
    { numRuns: 500 },
  );
});

test('property: a scalar a route ends at is matched by a json pattern on its path; a value found nowhere is not', () => {
  fc.assert(
    fc.property(documentArb, fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), (doc, choices) => {
      const r = route(doc, choices);
      fc.pre(r !== undefined && !isObject(r.value) && !Array.isArray(r.value));
      const body = answer(200, doc);
      assert.ok(matchesPattern({ json: { [r!.path]: r!.value as string } }, body));
      assert.ok(!matchesPattern({ json: { [r!.path]: 'never-in-a-document-\u2603' } }, body));
    }),
    { numRuns: 500 },
  );
});

test('property: whatever the path, the reader never throws and answers only values of the document', () => {
  const pathArb = fc.oneof(fc.string({ maxLength: 12 }), fc.array(fc.oneof(key, fc.constantFrom('[]', 'a[]', '[][]', '', 'constructor', '__proto__')), { maxLength: 5 }).map((xs) => xs.join('.')));
  fc.assert(
    fc.property(documentArb, pathArb, (doc, path) => {
      const all = subValues(doc);
      for (const v of jsonValuesAt(doc, path)) assert.ok(all.has(v), `${path} gave a value not in the document`);
      const scope = firstScopeAt(doc, path);
      assert.ok(scope === undefined || (typeof scope === 'string' && scope !== ''));
    }),
    { numRuns: 1000 },
  );
});

test('property: a plain name reads the top-level member as before paths existed', () => {
  fc.assert(
    fc.property(documentArb, fc.stringMatching(/^[a-z_]{1,3}$/), (doc, name) => {
      assert.deepEqual(jsonValuesAt(doc, name), Object.hasOwn(doc, name) ? [doc[name]] : []);
    }),
  );
});

test('property: `list[].x` reads x of every object element that has it, in order', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(scalar, fc.dictionary(fc.constantFrom('x', 'y'), scalar, { maxKeys: 2 })), { maxLength: 6 }), (list) => {
      const expected = list.filter((e) => isObject(e) && Object.hasOwn(e, 'x')).map((e) => (e as Record<string, unknown>).x);
      assert.deepEqual(jsonValuesAt({ list }, 'list[].x'), expected);
    }),
  );
});

test('a pathological answer costs at most its size times the path length', () => {
  // Every object holds the members "a" and "a.a": without walking each (object, position) once,
  // a path of 24 pieces would take 2^23 routes through it.
  let node: Record<string, unknown> = { a: 'end' };
  for (let i = 0; i < 24; i++) node = { a: node, 'a.a': node };
  const started = performance.now();
  const values = jsonValuesAt(node, Array.from({ length: 25 }, () => 'a').join('.'));
  assert.ok(values.includes('end'));
  assert.ok(performance.now() - started < 500, `${performance.now() - started} ms`);
});

describe('nested patterns through the proxy, against a loopback API and the sandbox IdP', () => {
  let api: LocalApi;
  let env: LifecycleEnv;
  let base: string;
  const killed = new Set<string>();
  const conns: Record<string, string> = {};
  const keys: Record<string, string> = {};

  const tokenOf = (s: Seen) => String(s.headers.authorization ?? '').replace(/^Bearer /, '');

  before(async () => {
    api = await startLocalApi((req) => {
      const path = new URL(req.url, 'http://x').pathname;
      const json = (status: number, body: unknown) => ({ status, body: JSON.stringify(body) });
      if (path.startsWith('/graph/') && killed.has(tokenOf(req))) return json(401, MICROSOFT_EXPIRED);
      if (path.startsWith('/linear/') && killed.has(tokenOf(req))) return json(400, LINEAR_EXPIRED);
      if (path === '/linear/items/invalid') return json(400, { errors: [{ extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }] });
      if (path.startsWith('/google/')) return json(403, GOOGLE_SCOPE);
      if (path.startsWith('/hubspot/')) return json(403, HUBSPOT_SCOPE);
      if (path.startsWith('/dropbox/')) return json(401, DROPBOX_SCOPE);
      return undefined;
    });
    const variant = (id: string, prefix: string, patterns: { auth_failures?: unknown[]; scope_failures?: unknown[] }) => ({
      extends: 'sandbox',
      id,
      environments: { production: { api_base_url: `${api.url}/${prefix}` } },
      auth_failures: [],
      scope_failures: [],
      ...patterns,
    });
    env = await startLifecycle({
      providers: [
        variant('graph-like', 'graph', {
          auth_failures: [{ status: 401, json: { 'error.code': ['InvalidAuthenticationToken', 'CompactToken.InvalidToken'] } }],
          scope_failures: [{ status: 403, json: { 'error.code': ['ErrorAccessDenied', 'Authorization_RequestDenied'] } }],
        }),
        variant('linear-like', 'linear', { auth_failures: [{ status: [200, 400, 401], json: { 'errors[].extensions.code': 'AUTHENTICATION_ERROR' } }] }),
        variant('google-like', 'google', { scope_failures: [{ status: 403, json: { 'error.details[].reason': 'ACCESS_TOKEN_SCOPE_INSUFFICIENT' } }] }),
        variant('hubspot-like', 'hubspot', { scope_failures: [{ status: 403, json: { category: 'MISSING_SCOPES' }, required_scope_field: 'errors[].context.requiredGranularScopes' }] }),
        variant('dropbox-like', 'dropbox', { scope_failures: [{ status: 401, json: { 'error..tag': 'missing_scope' }, required_scope_field: 'error.required_scope' }] }),
      ],
    });
    base = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
    for (const id of ['graph-like', 'linear-like', 'google-like', 'hubspot-like', 'dropbox-like']) {
      conns[id] = await env.connectTo(id);
      const res = await env.warrant.app.inject({
        method: 'POST',
        url: '/v1/agents',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        payload: { name: id, owner: 'alice@example.com', grants: [{ connection: conns[id], scopes: ['items:read'] }] },
      });
      assert.equal(res.statusCode, 201, res.body);
      keys[id] = res.json().api_key as string;
    }
  });
  after(async () => {
    await env?.cleanup();
    await api?.close();
  });

  const call = (id: string, path = '/items') => fetch(`${base}/v1/proxy/${conns[id]}${path}`, { headers: { authorization: `Bearer ${keys[id]}` } });

  async function expired(id: string) {
    killed.add((await env.warrant.tokens.getFreshToken(conns[id]!)).accessToken);
  }

  test('Microsoft: 401 {"error":{"code":"InvalidAuthenticationToken"}} → refresh once, retry once, the agent sees 200', async () => {
    await expired('graph-like');
    env.sandbox.resetStats();
    api.seen.length = 0;
    const res = await call('graph-like');
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { ok: true });
    assert.equal(res.headers.get('warrant-token-refreshed'), 'true');
    assert.equal(res.headers.get('warrant-retries'), '1');
    assert.equal(env.sandbox.stats().refreshRequests, 1);
    assert.equal(api.seen.length, 2);
    assert.notEqual(tokenOf(api.seen[0]!), tokenOf(api.seen[1]!), 'the retry carries the new token');
  });

  test('Linear: 400 with errors[].extensions.code AUTHENTICATION_ERROR → refresh and retry; another 400 passes as it is', async () => {
    await expired('linear-like');
    env.sandbox.resetStats();
    const res = await call('linear-like');
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get('warrant-token-refreshed'), 'true');
    assert.equal(env.sandbox.stats().refreshRequests, 1);
    env.sandbox.resetStats();
    const invalid = await call('linear-like', '/items/invalid');
    assert.equal(invalid.status, 400);
    assert.deepEqual(await invalid.json(), { errors: [{ extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }] });
    assert.equal(invalid.headers.get('warrant-token-refreshed'), 'false');
    assert.equal(env.sandbox.stats().refreshRequests, 0);
  });

  test('Google: 403 PERMISSION_DENIED with details[].reason ACCESS_TOKEN_SCOPE_INSUFFICIENT → scope_insufficient, no refresh', async () => {
    env.sandbox.resetStats();
    const res = await call('google-like');
    const body = (await res.json()) as { code: string; granted_scopes: string[]; connection: string; required_scope?: string };
    assert.equal(res.status, 403, JSON.stringify(body));
    assert.equal(body.code, 'scope_insufficient');
    assert.deepEqual(body.granted_scopes, ['items:read']);
    assert.equal(body.connection, conns['google-like']);
    assert.equal(body.required_scope, undefined, 'Google does not name the scope in its body');
    assert.equal(env.sandbox.stats().refreshRequests, 0);
  });

  test('HubSpot: the missing scopes named in errors[].context.requiredGranularScopes reach the agent', async () => {
    const res = await call('hubspot-like');
    const body = (await res.json()) as { code: string; required_scope: string };
    assert.equal(res.status, 403);
    assert.equal(body.code, 'scope_insufficient');
    assert.equal(body.required_scope, 'crm.objects.contacts.read crm.schemas.contacts.read');
  });

  test('Dropbox: a 401 whose error..tag says missing_scope is a scope failure, not a reason to refresh', async () => {
    env.sandbox.resetStats();
    const res = await call('dropbox-like');
    const body = (await res.json()) as { code: string; required_scope: string };
    assert.equal(res.status, 403);
    assert.equal(body.code, 'scope_insufficient');
    assert.equal(body.required_scope, 'files.content.read');
    assert.equal(env.sandbox.stats().refreshRequests, 0);
  });
});
