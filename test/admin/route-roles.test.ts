import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestWarrant, ADMIN_TOKEN } from '../helpers/app.ts';
import { registeredRoutes } from '../../src/http/app.ts';
import { adminRouteRoles, requiredRole, roleAllows, ADMIN_ROLES, type AdminRole } from '../../src/admin/index.ts';
import type { Warrant } from '../../src/warrant.ts';

// Guards against a route left unguarded: every route the app registers is walked. Under /v1/ each
// must be an admin route (the admin guard answers an anonymous call 401 admin_unauthenticated)
// unless it is an agent route listed below; each admin route refuses every role below the one
// admin/roles.ts gives it (403 admin_forbidden naming it) and lets the others through; every
// entry of the role table names a registered route. Outside /v1/, only the public surfaces below.

/** /v1/ routes an agent calls with its own key (docs/proxy.md): 401 agent_unauthenticated without one. */
const AGENT_ROUTES: Record<string, unknown> = {
  'GET /v1/connections/:id/token': undefined,
  'POST /v1/connections/:id/lease': { min_ttl: 60 },
};

/** Paths outside /v1/ that are public on purpose (or have a credential of their own: SCIM's token, an MCP client's). */
const PUBLIC_PREFIXES = ['/healthz', '/readyz', '/metrics', '/openapi.json', '/connect/', '/oauth/', '/.well-known/', '/scim/v2', '/mcp/', '/docs', '/ui'];
// `/ui` is the dashboard: its pages call the admin API with the signed-in credential (test/web/dashboard.test.ts walks them); `/` redirects there.

let warrant: Warrant;
let cleanup: () => Promise<void>;
const keys = {} as Record<AdminRole, string>;
let n = 0;
// Each anonymous call from its own address: the walk is not a brute force to be rate limited.
const address = () => `10.77.${(n >> 8) & 255}.${n++ & 255}`;

before(async () => {
  ({ warrant, cleanup } = await startTestWarrant());
  for (const role of ADMIN_ROLES) {
    const res = await warrant.app.inject({ method: 'POST', url: '/v1/admin-keys', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, payload: { name: `walk ${role}`, role } });
    assert.equal(res.statusCode, 201, res.body);
    keys[role] = res.json().api_key;
  }
});
after(async () => cleanup?.());

const urlOf = (path: string) => path.replace(/:[A-Za-z_][A-Za-z0-9_]*/g, 'x-walk').replace(/\*/g, 'x-walk');

async function call(method: string, path: string, token?: string, payload?: unknown) {
  const hasBody = method !== 'GET' && method !== 'DELETE' && method !== 'HEAD';
  const res = await warrant.app.inject({
    method: method as 'GET',
    url: urlOf(path),
    remoteAddress: address(),
    headers: token ? { authorization: `Bearer ${token}` } : {},
    ...(hasBody ? { payload: (payload ?? {}) as object } : {}),
  });
  let code: string | undefined;
  try {
    code = res.json().code;
  } catch {
    code = undefined;
  }
  return { status: res.statusCode, code, body: res.body };
}

test('every registered route is guarded: admin routes by role, agent routes by the agent key, the rest public on purpose', async () => {
  const routes = registeredRoutes(warrant.app).filter((r) => r.method !== 'HEAD'); // HEAD is its GET's (requiredRole maps it)
  const admin = new Set<string>();
  for (const { method, url } of routes) {
    const name = `${method} ${url}`;
    if (!url.startsWith('/v1/')) {
      assert.ok(url === '/' || PUBLIC_PREFIXES.some((p) => url === p || url.startsWith(p)), `${name}: a route outside /v1/ that is not a known public surface`);
      continue;
    }
    if (name in AGENT_ROUTES) {
      const res = await call(method, url, undefined, AGENT_ROUTES[name]);
      assert.deepEqual([res.status, res.code], [401, 'agent_unauthenticated'], `${name}: ${res.body}`);
      continue;
    }
    const anonymous = await call(method, url);
    assert.deepEqual([anonymous.status, anonymous.code], [401, 'admin_unauthenticated'], `${name} is not behind the admin guard: ${anonymous.body}`);
    admin.add(name);

    const needed = requiredRole(method, url);
    for (const role of ADMIN_ROLES) {
      const res = await call(method, url, keys[role]);
      assert.notEqual(res.status, 401, `${name} with a ${role} key: ${res.body}`);
      if (roleAllows(role, needed)) {
        assert.ok(res.code !== 'admin_forbidden', `${name} needs ${needed}, refused a ${role} key: ${res.body}`);
      } else {
        assert.equal(res.status, 403, `${name} needs ${needed}, let a ${role} key through: ${res.body}`);
        assert.equal(res.code, 'admin_forbidden');
        assert.equal(JSON.parse(res.body).required_role, needed);
      }
    }
  }
  assert.ok(admin.size >= 30, `only ${admin.size} admin routes walked`);
  for (const entry of Object.keys(adminRouteRoles)) assert.ok(admin.has(entry), `adminRouteRoles has ${entry}, which is no registered admin route`);
  // The sample the issue names: a read key cannot mint agents, nor an operate key.
  assert.equal(requiredRole('POST', '/v1/agents'), 'admin');
});
