import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeIssues, loadBuiltinProviders, providerSchema, redirectPathOf, redirectUriOf } from '../../src/providers/index.ts';
import { runWarrant } from '../helpers/process.ts';

// Mix-up defence needs each provider's issuer (RFC 9207) and its own callback path (RFC 9700
// §4.4.2.2). Before this, only the Google entries, GitLab and Xero declared an issuer, so the `iss`
// of every other provider's authorization response was dropped unchecked.

const providers = new Map(loadBuiltinProviders().map((p) => [p.id, p]));

/**
 * Issuers published by the providers (OIDC discovery `issuer`, RFC 8414 metadata or their
 * documentation), per environment. A placeholder is filled from the connection's typed param.
 */
const published: Record<string, Record<string, string>> = {
  asana: { production: 'https://app.asana.com' },
  'atlassian-confluence': { production: 'https://auth.atlassian.com' },
  'atlassian-jira': { production: 'https://auth.atlassian.com' },
  'auth0-management': { production: 'https://{tenant_domain}/' },
  docusign: { production: 'https://account.docusign.com/', demo: 'https://account-d.docusign.com/' },
  dropbox: { production: 'https://www.dropbox.com' },
  gitlab: { production: 'https://gitlab.com' },
  'google-calendar': { production: 'https://accounts.google.com' },
  'google-drive': { production: 'https://accounts.google.com' },
  'google-gmail': { production: 'https://accounts.google.com' },
  'google-sheets': { production: 'https://accounts.google.com' },
  'google-service-account': { production: 'https://accounts.google.com' },
  linkedin: { production: 'https://www.linkedin.com/oauth' },
  okta: { production: 'https://{okta_domain}' },
  quickbooks: { production: 'https://oauth.platform.intuit.com/op/v1', sandbox: 'https://oauth.platform.intuit.com/op/v1' },
  salesforce: { production: 'https://login.salesforce.com', sandbox: 'https://test.salesforce.com' },
  'salesforce-jwt': { production: 'https://login.salesforce.com', sandbox: 'https://test.salesforce.com' },
  slack: { production: 'https://slack.com' },
  xero: { production: 'https://identity.xero.com' },
  zoom: { production: 'https://zoom.us' },
};

/**
 * Authorization-code providers with no issuer a definition can state: none published (plain
 * OAuth 2.0), or, for Microsoft's common endpoint, one that depends on the user's tenant.
 * Their defence is the callback path alone.
 */
const withoutIssuer = new Set([
  'airtable', 'bitbucket', 'box', 'discord', 'figma', 'freee', 'freee-hr', 'github', 'github-app', 'hubspot', 'linear',
  'microsoft-graph', 'notion', 'pipedrive', 'shopify', 'spotify', 'twitter', 'zendesk',
]);

test('entries whose provider publishes an issuer declare it, per environment', () => {
  for (const [id, envs] of Object.entries(published)) {
    const p = providers.get(id);
    assert.ok(p, `${id} is missing from the catalog`);
    assert.deepEqual(Object.keys(p.environments).sort(), Object.keys(envs).sort(), `${id}: environments`);
    for (const [env, issuer] of Object.entries(envs)) assert.equal(p.environments[env]!.issuer, issuer, `${id}.${env}.issuer`);
  }
});

test('every authorization-code entry either declares an issuer or is known to have none to declare', () => {
  for (const p of providers.values()) {
    if (p.auth !== 'oauth2') continue;
    const declared = Object.values(p.environments).some((e) => e.issuer);
    if (withoutIssuer.has(p.id)) assert.ok(!declared, `${p.id} now declares an issuer: move it to the published table`);
    else assert.ok(declared, `${p.id} declares no issuer: add it, or list it as having none`);
  }
});

test('issuer, authorization_response_iss_parameter_supported and redirect_path are checked when a definition loads', () => {
  const base = { id: 'x', auth: 'oauth2', environments: { production: { authorization_url: 'https://idp.example/authorize', token_url: 'https://idp.example/token', api_base_url: 'https://api.example' } } };
  const problems = (over: Record<string, unknown>, env: Record<string, unknown> = {}) => {
    const r = providerSchema.safeParse({ ...base, ...over, environments: { production: { ...base.environments.production, ...env } } });
    return r.success ? '' : describeIssues(r.error);
  };
  assert.equal(problems({}, { issuer: 'https://idp.example' }), '');
  assert.match(problems({}, { issuer: 'https://idp.example/?tenant=a' }), /issuer: an issuer has no query or fragment/);
  assert.match(problems({}, { issuer: 'not a url' }), /issuer: must be an absolute URL/);
  assert.match(problems({}, { issuer: 'https://{tenant}.idp.example' }), /issuer: uses \{tenant\} but declares no connection param tenant/);
  const tenant = (from: string) => ({ connection_params: { tenant: { from, type: 'hostname_label' } } });
  assert.equal(problems(tenant('connection'), { issuer: 'https://{tenant}.idp.example' }), '');
  assert.match(problems(tenant('token_response'), { issuer: 'https://{tenant}.idp.example' }), /issuer: \{tenant\} comes from the token_response; an issuer may only use params given when the session starts/);
  assert.match(problems({ authorization_response_iss_parameter_supported: true }), /environments\.production\.issuer: required when authorization_response_iss_parameter_supported is true/);
  assert.equal(problems({ authorization_response_iss_parameter_supported: true }, { issuer: 'https://idp.example' }), '');
  assert.equal(problems({ redirect_path: '/oauth/callback' }), '');
  assert.equal(problems({ redirect_path: '/oauth/callback/google' }), '');
  for (const bad of ['/callback', '/oauth/callback/', '/oauth/callback/a/b', '/oauth/callback/../admin', 'https://evil.example/oauth/callback']) {
    assert.match(problems({ redirect_path: bad }), /redirect_path: is \/oauth\/callback or/, bad);
  }
});

test('the redirect URI of a provider: its own path under the public URL, unless redirect_path keeps another', () => {
  // DESIGN's shared callback by default; a path per provider with WARRANT_REDIRECT_PER_PROVIDER.
  assert.equal(redirectPathOf({ id: 'google-drive' }), '/oauth/callback');
  assert.equal(redirectPathOf({ id: 'google-drive' }, true), '/oauth/callback/google-drive');
  assert.equal(redirectUriOf('https://warrant.example.com/', { id: 'google-drive' }, true), 'https://warrant.example.com/oauth/callback/google-drive');
  assert.equal(redirectUriOf('https://warrant.example.com', { id: 'okta', redirect_path: '/oauth/callback' }), 'https://warrant.example.com/oauth/callback');
});

test('warrant providers show prints the exact redirect URI to register, above the definition', async () => {
  const shared = runWarrant(['providers', 'show', 'google-gmail'], { WARRANT_PUBLIC_URL: 'https://warrant.example.com' });
  assert.equal(await shared.exit(), 0, shared.stderr());
  assert.match(shared.stdout(), /^# redirect URI to register at the IdP: https:\/\/warrant\.example\.com\/oauth\/callback\nid: google-gmail\n/);
  const show = runWarrant(['providers', 'show', 'google-gmail'], { WARRANT_PUBLIC_URL: 'https://warrant.example.com', WARRANT_REDIRECT_PER_PROVIDER: '1' });
  assert.equal(await show.exit(), 0, show.stderr());
  assert.match(show.stdout(), /^# redirect URI to register at the IdP: https:\/\/warrant\.example\.com\/oauth\/callback\/google-gmail\nid: google-gmail\n/);
  const key = runWarrant(['providers', 'show', 'stripe'], {});
  assert.equal(await key.exit(), 0, key.stderr());
  assert.doesNotMatch(key.stdout(), /redirect URI/, 'an API-key provider has no callback');
});
