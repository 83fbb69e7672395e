import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endpointKeys, loadBuiltinProviders, loadCatalog, placeholdersOf, typesFor, type Provider } from '../../src/providers/index.ts';

// Loading throws (with the file name and the offending field) on any invalid definition, so this
// line alone checks every catalog file against the schema.
const providers = loadBuiltinProviders();
const byId = new Map(providers.map((p) => [p.id, p]));

function get(id: string): Provider {
  const p = byId.get(id);
  assert.ok(p, `provider ${id} is missing from the catalog`);
  return p;
}

const urlKeys = ['authorization_url', 'token_url', 'revocation_url', 'introspection_url', 'userinfo_url', 'issuer', 'api_base_url'] as const;

/** Every URL-ish string of a provider, with where it came from. */
function urlsOf(p: Provider): [string, string][] {
  const out: [string, string][] = [];
  for (const [envName, env] of Object.entries(p.environments)) {
    for (const key of urlKeys) {
      const v = env[key];
      if (v !== undefined) out.push([`${p.id}.environments.${envName}.${key}`, v]);
    }
  }
  if (p.docs_url) out.push([`${p.id}.docs_url`, p.docs_url]);
  if (p.jwt_bearer?.audience?.includes('://')) out.push([`${p.id}.jwt_bearer.audience`, p.jwt_bearer.audience]);
  return out;
}

test('the built-in catalog loads, with at least 25 providers', () => {
  assert.ok(providers.length >= 25, `only ${providers.length} providers`);
  // loadCatalog also rejects duplicate ids.
  assert.equal(loadCatalog().size, providers.length);
});

test('provider ids are unique and every provider has a name and docs_url', () => {
  const seen = new Set<string>();
  for (const p of providers) {
    assert.ok(!seen.has(p.id), `duplicate id ${p.id}`);
    seen.add(p.id);
    assert.ok(p.name, `${p.id} has no name`);
    assert.ok(p.docs_url, `${p.id} has no docs_url`);
  }
});

test('every URL is https, except a template that starts with a {placeholder}', () => {
  for (const p of providers) {
    for (const [where, url] of urlsOf(p)) {
      if (url.startsWith('{')) continue;
      assert.ok(url.startsWith('https://'), `${where} is not https: ${url}`);
      // The host part must parse once placeholders are filled.
      assert.doesNotThrow(() => new URL(url.replace(/\{[a-z_]+\}/g, 'x')), `${where} is not a URL: ${url}`);
    }
  }
});

test('every placeholder used in a URL or token param is a declared connection param', () => {
  for (const p of providers) {
    const declared = new Set(Object.keys(p.connection_params ?? {}));
    const strings: [string, string][] = [...urlsOf(p), ...Object.entries(p.token_params ?? {}).map(([k, v]): [string, string] => [`${p.id}.token_params.${k}`, v])];
    for (const [where, s] of strings) {
      for (const m of s.matchAll(/\{([a-z_]+)\}/g)) {
        // {client_id} in a revocation URL is the app's own client id (GitHub), not a connection param.
        if (m[1] === 'client_id' && where.endsWith('.revocation_url')) continue;
        assert.ok(declared.has(m[1]!), `${where} uses {${m[1]}} but ${p.id} declares no such connection param`);
      }
    }
  }
});

test('every placeholder in an endpoint URL is a typed connection param, of a type that fits where it lands', () => {
  // Regression (security review, high 5): placeholders were filled as raw strings.
  let typed = 0;
  for (const p of providers) {
    for (const [envName, env] of Object.entries(p.environments)) {
      for (const key of endpointKeys) {
        for (const { name, position } of placeholdersOf(env[key] ?? '')) {
          if (name === 'client_id' && key === 'revocation_url' && position === 'path') continue; // the app's client id (schema.ts)
          const where = `${p.id}.environments.${envName}.${key} {${name}}`;
          const type = p.connection_params?.[name]?.type;
          assert.ok(type, `${where} has no declared type`);
          assert.ok(typesFor[position].includes(type), `${where}: a ${type} cannot stand in the ${position}`);
          typed++;
        }
      }
    }
  }
  assert.ok(typed >= 20, `only ${typed} typed placeholders: the catalog's shopify, okta, salesforce … entries use them`);
  assert.equal(get('shopify').connection_params?.shop?.type, 'hostname_label');
  assert.equal(get('quickbooks').connection_params?.realm_id?.type, 'numeric_id');
  assert.deepEqual(get('salesforce').connection_params?.instance_url?.suffix, ['.salesforce.com', '.force.com']);
});

test('every oauth2 provider has authorization_url and token_url in every environment; token grants have token_url', () => {
  for (const p of providers) {
    assert.ok(Object.keys(p.environments).length > 0, `${p.id} has no environment`);
    for (const [name, env] of Object.entries(p.environments)) {
      if (p.auth === 'oauth2') {
        assert.ok(env.authorization_url, `${p.id}.${name} has no authorization_url`);
        assert.ok(env.token_url, `${p.id}.${name} has no token_url`);
      }
      if (p.auth === 'client_credentials' || p.auth === 'jwt_bearer') assert.ok(env.token_url, `${p.id}.${name} has no token_url`);
      assert.ok(env.api_base_url, `${p.id}.${name} has no api_base_url`);
    }
  }
});

test('every scope rule path starts with "/" and names a method', () => {
  for (const p of providers) {
    for (const [scope, rules] of Object.entries(p.scopes)) {
      for (const rule of rules) {
        assert.ok(rule.path.startsWith('/'), `${p.id} scope ${scope}: path ${rule.path} does not start with "/"`);
        assert.ok(!/^https?:/.test(rule.path), `${p.id} scope ${scope}: path is absolute`);
        const methods = Array.isArray(rule.method) ? rule.method : [rule.method];
        assert.ok(methods.length > 0, `${p.id} scope ${scope}: no method`);
      }
    }
  }
});

test('freee and freee HR: 6-hour access tokens and rotating refresh tokens', () => {
  for (const id of ['freee', 'freee-hr']) {
    const p = get(id);
    assert.equal(p.auth, 'oauth2');
    assert.equal(p.token_lifetime, 21600);
    assert.equal(p.refresh_token_rotation, true);
    assert.equal(p.environments.production?.token_url, 'https://accounts.secure.freee.co.jp/public_api/token');
  }
  assert.match(get('freee').environments.production!.api_base_url, /^https:\/\/api\.freee\.co\.jp\/api\/1/);
  assert.match(get('freee-hr').environments.production!.api_base_url, /^https:\/\/api\.freee\.co\.jp\/hr\//);
});

test('Google user APIs: offline access, consent prompt, revocation, 1 h tokens, 6-month idle refresh tokens', () => {
  for (const id of ['google-gmail', 'google-calendar', 'google-drive']) {
    const p = get(id);
    assert.equal(p.authorization_params?.access_type, 'offline', id);
    assert.equal(p.authorization_params?.prompt, 'consent', id);
    assert.equal(p.environments.production?.revocation_url, 'https://oauth2.googleapis.com/revoke', id);
    assert.equal(p.token_lifetime, 3600, id);
    assert.equal(p.refresh_token_idle_timeout, 15552000, id);
    assert.ok(Object.keys(p.scopes).length >= 2, `${id} has too few scopes`);
  }
  const gmail = get('google-gmail');
  assert.ok(gmail.scopes['https://www.googleapis.com/auth/gmail.readonly']?.some((r) => r.method === 'GET' && r.path === '/gmail/v1/users/*/messages/**'));
  assert.ok(gmail.scope_failures.some((f) => f.header && Object.values(f.header).includes('insufficient_scope')));
  const sa = get('google-service-account');
  assert.equal(sa.auth, 'jwt_bearer');
  assert.equal(sa.token_auth_method, 'none');
  assert.equal(sa.jwt_bearer?.audience, 'https://oauth2.googleapis.com/token');
});

test('Microsoft Graph: common tenant v2.0, offline_access, rotating but reusable refresh tokens', () => {
  const p = get('microsoft-graph');
  assert.match(p.environments.production!.authorization_url!, /^https:\/\/login\.microsoftonline\.com\/common\/oauth2\/v2\.0\//);
  assert.match(p.environments.production!.token_url!, /^https:\/\/login\.microsoftonline\.com\/common\/oauth2\/v2\.0\//);
  assert.ok(p.default_scopes?.includes('offline_access'));
  assert.equal(p.refresh_token_rotation, true);
  assert.equal(p.refresh_token_reusable, true);
  assert.equal(p.refresh_token_idle_timeout, 7776000);
});

test('Salesforce: production and sandbox hosts, instance_url base, session-timeout lifetime, revoke + introspect', () => {
  const p = get('salesforce');
  const prod = p.environments.production!;
  const sandbox = p.environments.sandbox!;
  assert.ok(sandbox, 'no sandbox environment');
  assert.match(prod.authorization_url!, /^https:\/\/login\.salesforce\.com\//);
  assert.match(sandbox.authorization_url!, /^https:\/\/test\.salesforce\.com\//);
  for (const env of [prod, sandbox]) {
    assert.equal(env.api_base_url, '{instance_url}/services/data/v62.0');
    assert.ok(env.revocation_url);
    assert.ok(env.introspection_url);
  }
  assert.equal(p.connection_params?.instance_url?.from, 'token_response');
  assert.equal(p.token_lifetime, 7200);
  const jwt = get('salesforce-jwt');
  assert.equal(jwt.auth, 'jwt_bearer');
  assert.ok(jwt.environments.sandbox);
});

test('Atlassian: JSON token body, audience + consent, offline_access, rotation with a 10-minute grace, cloud_id base', () => {
  for (const id of ['atlassian-jira', 'atlassian-confluence']) {
    const p = get(id);
    assert.equal(p.token_endpoint?.body, 'json', id);
    assert.equal(p.authorization_params?.audience, 'api.atlassian.com', id);
    assert.equal(p.authorization_params?.prompt, 'consent', id);
    assert.ok(p.default_scopes?.includes('offline_access'), id);
    assert.equal(p.refresh_token_rotation, true, id);
    assert.equal(p.refresh_token_grace_period, 600, id);
    assert.equal(p.connection_params?.cloud_id?.from, 'connection', id);
    assert.match(p.environments.production!.api_base_url, /\{cloud_id\}$/);
  }
  assert.equal(get('atlassian-jira').environments.production!.api_base_url, 'https://api.atlassian.com/ex/jira/{cloud_id}');
});

test('Slack: body-level auth and scope failures', () => {
  const p = get('slack');
  assert.equal(p.environments.production?.token_url, 'https://slack.com/api/oauth.v2.access');
  const auth = p.auth_failures.find((f) => f.status === 200 && f.json?.ok === false);
  assert.ok(auth, 'no 200 {ok: false} auth failure');
  const errors = auth.json!.error;
  assert.ok(Array.isArray(errors));
  for (const e of ['token_expired', 'invalid_auth', 'not_authed', 'account_inactive', 'token_revoked']) assert.ok(errors.includes(e), e);
  const scope = p.scope_failures.find((f) => f.json?.error === 'missing_scope');
  assert.ok(scope);
  assert.equal(scope.status, 200);
  assert.equal(scope.required_scope_field, 'needed');
  assert.match(p.notes ?? '', /rotation/i);
});

test('HubSpot: 30-minute tokens and MISSING_SCOPES', () => {
  const p = get('hubspot');
  assert.equal(p.token_lifetime, 1800);
  assert.ok(p.scope_failures.some((f) => f.status === 403 && f.json?.category === 'MISSING_SCOPES'));
});

test('GitHub: JSON accept header and 200-with-error token endpoint', () => {
  const p = get('github');
  assert.equal(p.token_endpoint?.accept, 'application/json');
  assert.equal(p.token_endpoint?.errors_with_200, true);
  assert.equal(p.environments.production?.api_base_url, 'https://api.github.com');
  const app = get('github-app');
  assert.equal(app.token_lifetime, 28800);
  assert.equal(app.token_endpoint?.errors_with_200, true);
});

test('Notion: JSON token body with client_secret_basic', () => {
  const p = get('notion');
  assert.equal(p.token_endpoint?.body, 'json');
  assert.equal(p.token_auth_method, 'client_secret_basic');
});

test('Xero: 30-minute tokens, rotation with a 30-minute grace, offline_access', () => {
  const p = get('xero');
  assert.equal(p.token_lifetime, 1800);
  assert.equal(p.refresh_token_rotation, true);
  assert.equal(p.refresh_token_grace_period, 1800);
  assert.ok(p.default_scopes?.includes('offline_access'));
  assert.equal(p.environments.production?.api_base_url, 'https://api.xero.com/api.xro/2.0');
});

test('QuickBooks: production and sandbox hosts with the realm id from the callback', () => {
  const p = get('quickbooks');
  assert.equal(p.environments.production?.api_base_url, 'https://quickbooks.api.intuit.com/v3/company/{realm_id}');
  assert.equal(p.environments.sandbox?.api_base_url, 'https://sandbox-quickbooks.api.intuit.com/v3/company/{realm_id}');
  assert.equal(p.connection_params?.realm_id?.from, 'callback');
  assert.equal(p.connection_params?.realm_id?.field, 'realmId');
  assert.equal(p.token_lifetime, 3600);
  assert.equal(p.refresh_token_rotation, true);
});

test('Stripe: API key as a bearer token', () => {
  const p = get('stripe');
  assert.equal(p.auth, 'api_key');
  assert.equal(p.environments.production?.api_base_url, 'https://api.stripe.com');
  assert.equal(p.token_injection?.in, 'header');
  assert.equal(p.token_injection?.name, 'Authorization');
  assert.equal(p.token_injection?.format, 'Bearer {token}');
});

test('other quirks: Dropbox offline access, DocuSign demo environment, Airtable PKCE + rotation, X offline.access', () => {
  assert.equal(get('dropbox').authorization_params?.token_access_type, 'offline');
  const docusign = get('docusign');
  assert.ok(docusign.environments.production && docusign.environments.demo);
  assert.match(docusign.environments.demo!.authorization_url!, /account-d\.docusign\.com/);
  const airtable = get('airtable');
  assert.equal(airtable.pkce, true);
  assert.equal(airtable.refresh_token_rotation, true);
  assert.ok(get('twitter').default_scopes?.includes('offline.access'));
  assert.equal(get('auth0-management').auth, 'client_credentials');
  assert.equal(get('shopify').token_injection?.name, 'X-Shopify-Access-Token');
});
