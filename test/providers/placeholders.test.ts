import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PlaceholderError, fillEndpoint, placeholdersOf, providerSchema, valueProblem, describeIssues, type PlaceholderSpec } from '../../src/providers/index.ts';

// Placeholder injection (security review, high 5): `{shop}`, `{okta_domain}`, `{realm_id}` …
// were substituted as raw strings, so `shop = evil.example/x?` sent the code, the PKCE verifier
// and the client secret to evil.example, and `169.254.169.254/...?` made the token exchange a
// request to cloud metadata. Every value is now typed, checked, encoded, and the host re-checked.

/** The review's injection strings, and a few more of their kind. */
const injections = ['evil.example/x?', '169.254.169.254/latest/meta-data?', '%2F..', 'acme\r\nHost: evil.example', 'a.b', '..', 'a/b', 'a#', 'a?b', 'a@evil.example', 'a:443', 'a b', ''];

const specs: Record<string, PlaceholderSpec> = {
  shop: { type: 'hostname_label' },
  domain: { type: 'hostname_under', suffix: ['.okta.com', '.oktapreview.com'] },
  realm: { type: 'numeric_id' },
  cloud: { type: 'uuid' },
  tenant: { type: 'path_segment' },
  instance: { type: 'https_origin', suffix: ['.salesforce.com', '.force.com'] },
};

test('each type accepts what it names', () => {
  const good: [string, string][] = [
    ['shop', 'acme'],
    ['shop', 'acme-store-2'],
    ['domain', 'acme.okta.com'],
    ['domain', 'acme.eu.oktapreview.com'],
    ['realm', '9130355377391234'],
    ['cloud', '0f6c1f6e-1c38-4d38-9c2f-6c0a1d3e9b11'],
    ['tenant', 'contoso.onmicrosoft.com'],
    ['tenant', '0f6c1f6e-1c38-4d38-9c2f-6c0a1d3e9b11'],
    ['instance', 'https://acme.my.salesforce.com'],
    ['instance', 'https://acme--dev.sandbox.lightning.force.com/'],
  ];
  for (const [name, value] of good) assert.equal(valueProblem(specs[name]!, value), undefined, `${name} = ${value}`);
});

test('the injection strings are refused by every type', () => {
  for (const [name, spec] of Object.entries(specs)) {
    for (const value of injections) {
      // Dots, a colon or an `@` inside one path segment are plain text there (and encoded where it lands).
      if (name === 'tenant' && ['a:443', 'a.b', 'a@evil.example'].includes(value)) continue;
      assert.ok(valueProblem(spec, value), `${name} (${spec.type}) accepted ${JSON.stringify(value)}`);
    }
  }
});

test('hosts: no IP literals, no single labels, only under the declared suffix', () => {
  for (const v of ['169.254.169.254', 'localhost', 'okta.com', 'acme.okta.com.evil.example', 'evilokta.com', 'acme.okta.com.', '-acme.okta.com', 'acme..okta.com']) {
    assert.ok(valueProblem(specs.domain!, v), v);
  }
  assert.ok(valueProblem({ type: 'hostname' }, '10.0.0.1'));
  assert.equal(valueProblem({ type: 'hostname' }, 'login.acme.example'), undefined);
  assert.ok(valueProblem({ type: 'hostname_under' }, 'acme.okta.com'), 'no suffix declared: nothing is accepted');
});

test('https_origin: an https origin under the suffix, nothing more', () => {
  for (const v of [
    'http://acme.my.salesforce.com',
    'https://acme.my.salesforce.com/x?',
    'https://acme.my.salesforce.com:8443',
    'https://user:pw@acme.my.salesforce.com',
    'https://acme.my.salesforce.com.evil.example',
    'https://evil.example/.salesforce.com',
    'https://169.254.169.254',
    'https://acme.my.salesforce.com#x',
    'https://acme.my.salesforce.com\\@evil.example',
    'javascript:alert(1)',
  ]) {
    assert.ok(valueProblem(specs.instance!, v), v);
  }
});

test('placeholdersOf: where each one lands', () => {
  assert.deepEqual(placeholdersOf('https://{shop}.myshopify.com/admin/{v}'), [
    { name: 'shop', position: 'host_label' },
    { name: 'v', position: 'path' },
  ]);
  assert.deepEqual(placeholdersOf('https://{okta_domain}/oauth2/v1/token'), [{ name: 'okta_domain', position: 'host' }]);
  assert.deepEqual(placeholdersOf('{instance_url}/services/data/v62.0'), [{ name: 'instance_url', position: 'origin' }]);
  assert.deepEqual(placeholdersOf('https://a.example/x?tenant={t}'), [{ name: 't', position: 'query' }]);
  assert.deepEqual(placeholdersOf('https://api-{x}.example.com/'), [{ name: 'x', position: 'host_other' }]);
});

test('fillEndpoint: checked, encoded, and the host stays the template\'s', () => {
  const params = { shop: 'ACME', realm: '123', tenant: "o'brien:x", instance: 'https://acme.my.salesforce.com/', domain: 'acme.okta.com', cloud: '0f6c1f6e-1c38-4d38-9c2f-6c0a1d3e9b11' };
  assert.equal(fillEndpoint('https://{shop}.myshopify.com/admin', params, specs), 'https://acme.myshopify.com/admin');
  assert.equal(fillEndpoint('https://quickbooks.api.intuit.com/v3/company/{realm}', params, specs), 'https://quickbooks.api.intuit.com/v3/company/123');
  assert.equal(fillEndpoint('https://login.example/{tenant}/token', params, specs), "https://login.example/o'brien%3Ax/token");
  assert.equal(fillEndpoint('{instance}/services/data/v62.0', params, specs), 'https://acme.my.salesforce.com/services/data/v62.0');
  assert.equal(fillEndpoint('https://{domain}/api/v1', params, specs), 'https://acme.okta.com/api/v1');
  for (const value of injections) {
    for (const [template, name] of [
      ['https://{shop}.myshopify.com/admin', 'shop'],
      ['https://{domain}/oauth2/v1/token', 'domain'],
      ['https://quickbooks.api.intuit.com/v3/company/{realm}', 'realm'],
      ['https://api.atlassian.com/ex/jira/{cloud}', 'cloud'],
      ['{instance}/services/data', 'instance'],
    ] as const) {
      assert.throws(
        () => fillEndpoint(template, { ...params, [name]: value }, specs),
        (e: unknown) => e instanceof PlaceholderError && e.param === name,
        `${template} with ${JSON.stringify(value)}`,
      );
    }
  }
  assert.throws(() => fillEndpoint('https://{shop}.myshopify.com/', {}, specs), (e: unknown) => e instanceof PlaceholderError && /no value/.test(e.reason));
  assert.throws(() => fillEndpoint('https://{x}.myshopify.com/', { x: 'a' }, {}), (e: unknown) => e instanceof PlaceholderError && /no declared type/.test(e.reason));
  assert.throws(() => fillEndpoint('https://{realm}.myshopify.com/', params, specs), (e: unknown) => e instanceof PlaceholderError && /may not be used/.test(e.reason));
});

test('the schema refuses a placeholder with no type, a type that cannot stand where it is, and a suffix-less host type', () => {
  const base = {
    id: 'acme',
    auth: 'oauth2',
    environments: { production: { authorization_url: 'https://{shop}.acme.example/authorize', token_url: 'https://{shop}.acme.example/token', api_base_url: 'https://{shop}.acme.example/api' } },
  };
  const issues = (def: object) => {
    const r = providerSchema.safeParse(def);
    return r.success ? '' : describeIssues(r.error);
  };
  assert.match(issues(base), /environments\.production\.authorization_url: uses \{shop\} but declares no connection param shop/);
  assert.match(issues({ ...base, connection_params: { shop: { from: 'connection' } } }), /connection_params\.shop\.type must say what it may be \(hostname_label\)/);
  assert.match(issues({ ...base, connection_params: { shop: { from: 'connection', type: 'path_segment' } } }), /\{shop\} is a path_segment, which cannot stand there/);
  assert.equal(issues({ ...base, connection_params: { shop: { from: 'connection', type: 'hostname_label' } } }), '');
  assert.match(
    issues({ ...base, environments: { production: { ...base.environments.production, api_base_url: 'https://{d}/api' } }, connection_params: { shop: { from: 'connection', type: 'hostname_label' }, d: { from: 'connection', type: 'hostname_under' } } }),
    /connection_params\.d\.suffix: required for type hostname_under/,
  );
  assert.match(
    issues({ ...base, environments: { production: { ...base.environments.production, api_base_url: 'https://acme.example/api?x={shop}' } }, connection_params: { shop: { from: 'connection', type: 'hostname_label' } } }),
    /\{shop\} may only stand for/,
  );
});
