import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestWarrant } from '../helpers/app.ts';
import { registeredRoutes } from '../../src/http/app.ts';
import { problemTypes } from '../../src/errors/index.ts';
import { rawPathItems } from '../../src/http/openapi-raw.ts';
import type { Warrant } from '../../src/warrant.ts';
import { openapiProblems } from './openapi-structure.ts';

// The API reference (issue 12): every public route is in /openapi.json with a summary, a
// description, a success answer and its failure answers; the routes served outside the router
// (proxy, authorization server, MCP) are documented and really served; the document is
// well-formed OpenAPI 3.1; /docs renders it from Warrant's own assets only. A route added without
// its documentation fails here, naming it.

/** Registered but internal: documented as one entry each (`/docs`, `/ui`), not page by page. */
const INTERNAL = [/^\/docs\/./, /^\/ui\/./];
/** Routes that have no failure to document: a redirect, a static page. */
const CANNOT_FAIL = new Set(['GET /', 'GET /docs']);

type Operation = { summary?: string; description?: string; tags?: string[]; security?: Record<string, string[]>[]; responses: Record<string, any>; requestBody?: any };
type Doc = { openapi: string; paths: Record<string, Record<string, Operation>>; tags: { name: string; description?: string }[]; components: any };

let warrant: Warrant;
let cleanup: () => Promise<void>;
let base: string;
let doc: Doc;

before(async () => {
  ({ warrant, cleanup } = await startTestWarrant({ WARRANT_SCIM_TOKEN: 'scim-token-for-the-openapi-walk-0123' }));
  await warrant.listen();
  base = `http://127.0.0.1:${(warrant.app.server.address() as { port: number }).port}`;
  const res = await fetch(`${base}/openapi.json`);
  assert.equal(res.status, 200);
  doc = (await res.json()) as Doc;
});
after(async () => cleanup?.());

const openapiPath = (url: string) => url.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}').replace(/\/\*$/, '/{path}');
const isFailure = (status: string) => /^[45]/.test(status);
const operations = () => Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ name: `${method.toUpperCase()} ${path}`, op })));

test('every public route is documented: summary, description, a success answer, its failure answers', () => {
  const missing: string[] = [];
  for (const { method, url } of registeredRoutes(warrant.app)) {
    if (method === 'HEAD' || INTERNAL.some((re) => re.test(url))) continue;
    const name = `${method} ${url}`;
    const op = doc.paths[openapiPath(url)]?.[method.toLowerCase()];
    if (!op) {
      missing.push(`${name}: not in /openapi.json`);
      continue;
    }
    if (!op.summary?.trim()) missing.push(`${name}: no summary`);
    if (!op.description?.trim()) missing.push(`${name}: no description`);
    if (!op.tags?.length) missing.push(`${name}: no tag`);
    const statuses = Object.keys(op.responses);
    if (!statuses.some((s) => /^[23]/.test(s))) missing.push(`${name}: no success answer`);
    if (!CANNOT_FAIL.has(name) && !statuses.some((s) => isFailure(s) && op.responses[s].content)) missing.push(`${name}: no failure answer`);
  }
  assert.equal(missing.length, 0, `routes to document (schema.summary, .description, .problems: src/http/openapi.ts):\n${missing.join('\n')}`);
});

test('problem answers use the shared Problem schema, one example per code, at its status', () => {
  assert.deepEqual(doc.components.schemas.Problem.required, ['type', 'title', 'status', 'code']);
  for (const member of ['detail', 'field', 'required_scope', 'retry_after', 'reauth_url']) assert.ok(doc.components.schemas.Problem.properties[member], member);
  let seen = 0;
  for (const { name, op } of operations()) {
    for (const [status, res] of Object.entries(op.responses)) {
      const problem = res.content?.['application/problem+json'];
      if (!problem) continue;
      seen++;
      assert.equal(problem.schema.$ref, '#/components/schemas/Problem', `${name} ${status}`);
      const examples = Object.entries<{ value: { code: keyof typeof problemTypes; status: number } }>(problem.examples);
      assert.ok(examples.length > 0, `${name} ${status}: no example`);
      for (const [code, { value }] of examples) {
        assert.ok(code in problemTypes, `${name} ${status}: unknown code ${code}`);
        assert.equal(String(value.status), status, `${name}: the ${code} example`);
        assert.ok(res.description.includes(`\`${code}\``), `${name} ${status}: the description names ${code}`);
      }
    }
  }
  assert.ok(seen > 100, `problem answers are everywhere (${seen})`);
});

test('credentials imply their failures and say who may call', () => {
  for (const { name, op } of operations()) {
    const schemes = new Set((op.security ?? []).flatMap((s) => Object.keys(s)));
    if (schemes.has('admin')) {
      assert.ok(op.responses['401']?.content['application/problem+json'].examples.admin_unauthenticated, `${name}: 401 admin_unauthenticated`);
      assert.match(op.description!, /Who may call it:.*admin key whose role is/, name);
    }
    if (schemes.has('agent')) {
      assert.ok(op.responses['401']?.content['application/problem+json'].examples.agent_unauthenticated, `${name}: 401 agent_unauthenticated`);
      assert.match(op.description!, /Who may call it:/, name);
    }
  }
  // A role above read is named, and so is 403 admin_forbidden.
  const revoke = doc.paths['/v1/connections/{id}']!.delete!;
  assert.match(revoke.description!, /`operate` or `admin`/);
  assert.ok(revoke.responses['403'].content['application/problem+json'].examples.admin_forbidden);
  assert.ok(doc.paths['/v1/connections/{id}']!.get!.responses['404'], 'a lookup by id documents not_found');
});

test('tags are declared with descriptions', () => {
  const declared = new Map(doc.tags.map((t) => [t.name, t.description]));
  for (const { name, op } of operations()) {
    for (const tag of op.tags ?? []) assert.ok(declared.get(tag)?.trim(), `${name}: tag ${tag} is not declared with a description (src/http/openapi.ts, tags)`);
  }
});

test('the main routes carry request and response examples', () => {
  const media = (x: any) => Object.values<any>(x?.content ?? {})[0];
  const hasExample = (m: any) => m && (m.example !== undefined || m.examples !== undefined || m.schema?.examples !== undefined);
  const main: [string, string, string][] = [
    ['post', '/v1/connect-sessions', '201'],
    ['post', '/v1/connections', '201'],
    ['post', '/v1/agents', '201'],
    ['post', '/v1/connections/{id}/lease', '200'],
    ['post', '/v1/webhooks', '201'],
  ];
  for (const [method, path, ok] of main) {
    const op = doc.paths[path]![method]!;
    assert.ok(hasExample(media(op.requestBody)), `${method} ${path}: request example`);
    assert.ok(hasExample(media(op.responses[ok])), `${method} ${path}: response example`);
  }
  for (const path of ['/v1/connections/{id}', '/v1/connections/{id}/token', '/v1/proxy/{connection}/{path}']) {
    const method = 'get';
    assert.ok(hasExample(media(doc.paths[path]![method]!.responses['200'])), `${method} ${path}: response example`);
  }
});

test('the proxy and the other routes outside the router are documented, and really served', async () => {
  const proxy = doc.paths['/v1/proxy/{connection}/{path}']!;
  for (const m of ['get', 'post', 'put', 'patch', 'delete']) {
    assert.ok(proxy[m]?.summary && proxy[m]!.security?.some((s) => 'agent' in s), `proxy ${m}`);
    for (const code of ['policy_denied', 'scope_insufficient', 'reauth_required', 'refresh_unavailable', 'upstream_unavailable']) {
      const status = String(problemTypes[code as keyof typeof problemTypes].status);
      assert.ok(proxy[m]!.responses[status]?.content['application/problem+json'].examples[code], `proxy ${m}: ${code}`);
    }
  }
  for (const p of ['/oauth/callback', '/connect/{id}', '/metrics', '/healthz', '/readyz', '/scim/v2/Users', '/mcp/warrant', '/mcp/{server}', '/.well-known/oauth-authorization-server', '/oauth2/token', '/oauth2/authorize', '/oauth2/register', '/oauth2/revoke', '/oauth2/introspect', '/ui', '/docs']) {
    assert.ok(doc.paths[p], `${p} is in the document`);
  }
  // Each documentation-only path answers from Warrant, not with the router's "no route".
  for (const [path, item] of Object.entries(rawPathItems())) {
    const url = path.replace('{connection}', 'con_walk').replace('{path}', 'items').replace('{server}', 'walk');
    for (const method of Object.keys(item).filter((m) => m !== 'head' && m !== 'options')) {
      const res = await fetch(`${base}${url}`, { method: method.toUpperCase(), redirect: 'manual', ...(['post', 'put', 'patch'].includes(method) ? { body: '{}', headers: { 'content-type': 'application/json' } } : {}) });
      const text = await res.text();
      assert.ok(!text.includes('no route'), `${method.toUpperCase()} ${url} is not served: ${res.status} ${text.slice(0, 200)}`);
    }
  }
});

test('the document validates as OpenAPI 3.1', () => {
  assert.equal(doc.openapi, '3.1.0');
  assert.deepEqual(openapiProblems(doc), []);
});

test('/docs renders the reference from Warrant alone', async () => {
  const res = await fetch(`${base}/docs`, { redirect: 'follow' });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
  const csp = res.headers.get('content-security-policy') ?? '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.doesNotMatch(csp, /https?:|\*/, 'the CSP allows no other origin');
  const html = await res.text();
  const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  assert.ok(refs.length >= 3, 'the page loads its assets');
  assert.doesNotMatch(html, /(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/i, 'no absolute URL in the HTML');
  for (const ref of refs) {
    const asset = await fetch(new URL(ref, res.url));
    assert.equal(asset.status, 200, ref);
    await asset.arrayBuffer();
  }
  const initializer = await (await fetch(new URL('./static/swagger-initializer.js', res.url.endsWith('/') ? res.url : `${res.url}/`))).text();
  assert.match(initializer, /resolveUrl\('\.\/json'\)/, 'the UI reads the document from Warrant');
  assert.match(initializer, /validatorUrl: null/, 'no external validator badge');
  const served = (await (await fetch(`${base}/docs/json`)).json()) as Doc;
  assert.deepEqual(Object.keys(served.paths).sort(), Object.keys(doc.paths).sort());
});
