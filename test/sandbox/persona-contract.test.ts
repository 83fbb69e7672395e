import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startPersonaRig, type PersonaRig, type Reply, type RigPersona } from '../helpers/persona-contract.ts';
import { personaClient } from '../../src/sandbox/personas/engine.ts';

// Issue 9 "What it must show": each persona runs its REAL catalog entry (`extends`, every URL
// pointed at the sandbox) through Warrant's public HTTP API — connect as a browser, a proxied call
// under an agent's narrow grant, refresh healing an expired token, a missing scope, an upstream
// revocation ending in reauth_required, and DELETE with verified revocation on a second connection.

interface Call {
  method: string;
  path: string;
  json?: unknown;
  form?: Record<string, string>;
  headers?: Record<string, string>;
}

type RefreshMode = 'expire-next' | 'ttl';

interface Contract extends RigPersona {
  /** Provider id in Warrant. */
  provider: string;
  scopes: string[];
  /** The connection's scopes as Warrant must read the token answer (default: `scopes`). */
  granted?: string[];
  params?: Record<string, string>;
  /** The catalog environment connected to (default production). */
  environment?: string;
  /** The connection's params after connect: a string is the value, a RegExp its form. */
  connectionParams?: Record<string, string | RegExp>;
  /** The access token's lifetime Warrant recorded, in seconds (±5), where the answer has no expires_in. */
  lifetime?: number;
  agentScopes: string[];
  call: Call;
  /** A call under a granted scope the agent was not given: policy_denied, upstream never called. */
  denied?: Call;
  /**
   * How the access token is made to expire, each in turn: `expire-next` the API says "expired"
   * (Slack `token_expired`), `ttl` the token is killed upstream (Slack `invalid_auth`);
   * `{ none }`: why there is no refresh to test.
   */
  refresh: RefreshMode | RefreshMode[] | { none: string };
  /** A call the agent's scope reaches while the token lost `withdraw` upstream. */
  missingScope: { call: Call; withdraw: string[]; requiredScope?: string; passedOn?: number } | { none: string };
  /** What the revocation request looked like at the persona; absent: the provider has none. */
  revocation?: { method: string; auth: string; contentType?: string; fields?: string[] };
}

const body = (r: Reply) => JSON.stringify(r.body);
const g = (scope: string) => `https://www.googleapis.com/auth/${scope}`;

const contracts: Contract[] = [
  {
    persona: 'slack',
    provider: 'slack',
    scopes: ['chat:write', 'channels:read', 'users:read'],
    agentScopes: ['channels:read', 'users:read'],
    call: { method: 'GET', path: '/conversations.list' },
    denied: { method: 'POST', path: '/chat.postMessage', json: { channel: 'C0SANDBOX', text: 'hi' } },
    // Both body-level answers, HTTP 200: {"ok": false, "error": "token_expired"}, then "invalid_auth".
    refresh: ['expire-next', 'ttl'],
    missingScope: { call: { method: 'GET', path: '/users.list' }, withdraw: ['users:read'], requiredScope: 'users:read' },
    revocation: { method: 'POST', auth: 'bearer', fields: [] },
  },
  {
    persona: 'github',
    provider: 'github',
    scopes: ['repo', 'gist'],
    agentScopes: ['repo'],
    call: { method: 'GET', path: '/repos/sandbox-user/repo' },
    denied: { method: 'PATCH', path: '/gists/aa5a315d61ae9438b18d', json: { description: 'x' } },
    refresh: { none: 'GitHub OAuth app tokens do not expire and come without a refresh token' },
    // GitHub says "missing scope" as 403 + X-Accepted-OAuth-Scopes naming none of the X-OAuth-Scopes
    // the token holds (the catalog's accepted_scopes_header pattern); the agent is told the accepted ones.
    missingScope: { call: { method: 'GET', path: '/repos/sandbox-user/repo' }, withdraw: ['repo'], requiredScope: 'repo public_repo' },
    revocation: { method: 'DELETE', auth: 'basic', contentType: 'application/json', fields: ['access_token'] },
  },
  {
    persona: 'hubspot',
    provider: 'hubspot',
    scopes: ['crm.objects.contacts.read', 'crm.objects.deals.read'],
    granted: ['oauth', 'crm.objects.contacts.read', 'crm.objects.deals.read'],
    agentScopes: ['crm.objects.contacts.read', 'crm.objects.deals.read'],
    call: { method: 'GET', path: '/crm/v3/objects/contacts' },
    refresh: 'expire-next',
    missingScope: { call: { method: 'GET', path: '/crm/v3/objects/deals' }, withdraw: ['crm.objects.deals.read'] },
    revocation: { method: 'POST', auth: 'post' },
  },
  {
    persona: 'linear',
    provider: 'linear',
    scopes: ['read', 'write'],
    agentScopes: ['read'],
    call: { method: 'POST', path: '/graphql', json: { query: '{ viewer { id name } }' } },
    refresh: 'expire-next',
    // Linear's scope failure shape is undocumented (catalog notes): its 403 FORBIDDEN is passed on.
    missingScope: { call: { method: 'POST', path: '/graphql', json: { query: '{ viewer { id } }' } }, withdraw: ['read'], passedOn: 403 },
    revocation: { method: 'POST', auth: 'bearer' },
  },
  {
    persona: 'freee',
    provider: 'freee',
    scopes: ['read', 'write'],
    agentScopes: ['read'],
    call: { method: 'GET', path: '/companies' },
    denied: { method: 'POST', path: '/deals', json: { company_id: 1 } },
    refresh: 'expire-next',
    // freee's 403 says "no permission" for a scope and for a role alike: passed on.
    missingScope: { call: { method: 'GET', path: '/deals' }, withdraw: ['read'], passedOn: 403 },
    revocation: { method: 'POST', auth: 'post' },
  },
  {
    persona: 'xero',
    provider: 'xero',
    scopes: ['accounting.settings.read', 'accounting.contacts.read'],
    granted: ['offline_access', 'accounting.settings.read', 'accounting.contacts.read'],
    agentScopes: ['accounting.settings.read'],
    // Answers 2xx only with Xero-tenant-id naming the grant's tenant: discovery gave the connection its tenant_id.
    call: { method: 'GET', path: '/Organisation' },
    denied: { method: 'GET', path: '/Contacts' },
    refresh: 'expire-next',
    missingScope: { call: { method: 'GET', path: '/Organisation' }, withdraw: ['accounting.settings.read'] },
    revocation: { method: 'POST', auth: 'basic', contentType: 'application/x-www-form-urlencoded' },
  },
  {
    persona: 'notion',
    provider: 'notion',
    // No OAuth scopes at Notion: these are Warrant's own, one per capability, never sent (idp_scopes: false).
    scopes: ['read_content', 'read_comments', 'insert_comments'],
    agentScopes: ['read_content', 'read_comments'],
    // Notion-Version comes from the catalog's api_headers: the persona refuses a call without it.
    call: { method: 'POST', path: '/search', json: { query: '' } },
    denied: { method: 'POST', path: '/comments', json: { parent: { page_id: '00000000-0000-4000-a000-000000000007' }, rich_text: [] } },
    refresh: 'expire-next',
    // The integration lost a capability: Notion's 403 restricted_resource.
    missingScope: { call: { method: 'GET', path: '/comments' }, withdraw: ['read_comments'] },
    revocation: { method: 'POST', auth: 'basic', contentType: 'application/json', fields: ['token'] },
  },
  {
    persona: 'microsoft',
    provider: 'microsoft-graph',
    scopes: ['User.Read', 'Mail.Read'],
    // Microsoft's answer names the resource scopes only (https://graph.microsoft.com/user.read …):
    // offline_access is read from the refresh token that came back.
    granted: ['offline_access', 'User.Read', 'Mail.Read'],
    agentScopes: ['User.Read'],
    call: { method: 'GET', path: '/me' },
    denied: { method: 'GET', path: '/me/messages' },
    refresh: 'expire-next',
    missingScope: { call: { method: 'GET', path: '/me' }, withdraw: ['User.Read'] },
  },
  {
    persona: 'google',
    id: 'google-drive',
    extends: 'google-drive',
    provider: 'google-drive',
    scopes: [g('drive.readonly'), g('drive.file')],
    agentScopes: [g('drive.readonly')],
    call: { method: 'GET', path: '/drive/v3/files' },
    // drive.file reaches DELETE on a file, drive.readonly does not.
    denied: { method: 'DELETE', path: '/drive/v3/files/1a2b3c' },
    refresh: 'expire-next',
    // Google: 403 with error.details[].reason ACCESS_TOKEN_SCOPE_INSUFFICIENT and WWW-Authenticate insufficient_scope.
    missingScope: { call: { method: 'GET', path: '/drive/v3/files' }, withdraw: [g('drive.readonly'), g('drive.file')] },
    revocation: { method: 'POST', auth: 'post', contentType: 'application/x-www-form-urlencoded' },
  },
  {
    persona: 'atlassian',
    id: 'atlassian-jira',
    extends: 'atlassian-jira',
    provider: 'atlassian-jira',
    scopes: ['read:jira-user', 'read:jira-work'],
    granted: ['offline_access', 'read:jira-user', 'read:jira-work'],
    // Tenant discovery (accessible-resources) gave the connection its cloud_id; the persona answers
    // 404 under /ex/jira/{another id}, so a 2xx call proves it is the grant's site.
    connectionParams: { cloud_id: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/ },
    agentScopes: ['read:jira-user'],
    call: { method: 'GET', path: '/rest/api/3/myself' },
    denied: { method: 'GET', path: '/rest/api/3/issue/SBX-1' },
    // The persona refuses a form token request: a healed call proves the refresh was sent as JSON.
    refresh: 'expire-next',
    // Atlassian: 401 "Unauthorized; scope does not match" (a scope failure, not a refresh).
    missingScope: { call: { method: 'GET', path: '/rest/api/3/myself' }, withdraw: ['read:jira-user'] },
  },
  {
    persona: 'quickbooks',
    provider: 'quickbooks',
    // The sandbox environment: its own app keys (QUICKBOOKS_SANDBOX_CLIENT_ID/_SECRET, see the
    // override below), its own API host; the production keys are not the persona's client.
    environment: 'sandbox',
    override: (sandbox) => {
      const def = sandbox.persona!.providerDefinition();
      const { client_id: _id, client_secret: _secret, ...sandboxEnv } = def.environments.sandbox!;
      return {
        client_id: 'quickbooks-production-app',
        client_secret: 'quickbooks-production-secret',
        environments: { ...def.environments, production: { ...def.environments.production, client_id: 'quickbooks-production-app', client_secret: 'quickbooks-production-secret' }, sandbox: sandboxEnv },
      };
    },
    scopes: ['com.intuit.quickbooks.accounting'],
    connectionParams: { realm_id: /^\d+$/ },
    agentScopes: ['com.intuit.quickbooks.accounting'],
    // The persona answers only under /v3/company/{the grant's realmId}: realm_id came from the callback.
    call: { method: 'GET', path: '/companyinfo/1' },
    refresh: 'expire-next',
    // Intuit's 403 Fault AUTHORIZATION (003100) is not told apart from other authorization faults: passed on.
    missingScope: { call: { method: 'GET', path: '/companyinfo/1' }, withdraw: ['com.intuit.quickbooks.accounting'], passedOn: 403 },
    revocation: { method: 'POST', auth: 'basic', contentType: 'application/json', fields: ['token'] },
  },
  {
    persona: 'salesforce',
    provider: 'salesforce',
    scopes: ['api', 'chatter_api'],
    granted: ['refresh_token', 'api', 'chatter_api'],
    // The token answer's instance_url, checked as the catalog's https_origin with its suffixes. The
    // persona's definition points api_base_url at the sandbox's literal org path instead of
    // {instance_url}/services/data/v62.0 (docs/sandbox.md, Personas).
    connectionParams: { instance_url: 'https://sandbox-org.my.salesforce.com' },
    // No expires_in: the catalog's token_lifetime (2 h session) is the access token's lifetime.
    lifetime: 7200,
    agentScopes: ['chatter_api'],
    call: { method: 'GET', path: '/chatter/users/me' },
    denied: { method: 'GET', path: '/sobjects' },
    // 401 INVALID_SESSION_ID (auth_failures) → refresh, although the token has not reached its lifetime.
    refresh: 'expire-next',
    // Salesforce's 403 for a session that may not use the API is not a scope pattern: passed on.
    missingScope: { call: { method: 'GET', path: '/chatter/users/me' }, withdraw: ['chatter_api', 'api'], passedOn: 403 },
    revocation: { method: 'POST', auth: 'post', contentType: 'application/x-www-form-urlencoded' },
  },
];

describe('persona contracts: the real catalog entries through Warrant’s public API', { timeout: 60_000 }, () => {
  let rig: PersonaRig;
  before(async () => {
    // The QuickBooks sandbox environment's keys, read through its ${env:…} references.
    rig = await startPersonaRig(contracts, {}, { QUICKBOOKS_SANDBOX_CLIENT_ID: personaClient.id, QUICKBOOKS_SANDBOX_CLIENT_SECRET: personaClient.secret });
  });
  after(() => rig?.cleanup());

  for (const c of contracts) {
    const refreshName = 'none' in Object(c.refresh) ? `no refresh (${(c.refresh as { none: string }).none})` : 'refresh heals an expired token';
    test(`${c.persona}: connect, proxied call, ${refreshName}, missing scope, upstream revocation → reauth_required, DELETE revokes`, async () => {
      const sandbox = rig.sandbox(c.persona);
      const persona = sandbox.persona!;

      // 1. Connect as a browser would; the granted scopes are read as the provider writes them.
      const connectedAt = Date.now();
      const connection = await rig.connect(c.provider, c.scopes, { params: c.params, environment: c.environment });
      const view = (await rig.admin('GET', `/v1/connections/${connection}`)).body;
      assert.equal(view.status, 'active', body({ body: view } as Reply));
      assert.deepEqual([...view.scopes].sort(), [...(c.granted ?? c.scopes)].sort());
      assert.deepEqual(view.missing_scopes, []);
      assert.equal(view.environment, c.environment ?? 'production');
      if (c.connectionParams) {
        const params = await rig.params(connection);
        assert.deepEqual(Object.keys(params).sort(), Object.keys(c.connectionParams).sort(), JSON.stringify(params));
        for (const [name, want] of Object.entries(c.connectionParams)) {
          if (typeof want === 'string') assert.equal(params[name], want, name);
          else assert.match(params[name]!, want, name);
        }
      }
      if (c.lifetime !== undefined) {
        const seconds = (Date.parse(view.expires_at) - connectedAt) / 1000;
        assert.ok(Math.abs(seconds - c.lifetime) <= 5, `expires_at ${view.expires_at}: ${seconds} s, not the catalog's ${c.lifetime}`);
      }

      // 2. A proxied call under the agent's narrow grant; a call under another scope is Warrant's to refuse.
      const key = await rig.agent([{ connection, scopes: c.agentScopes }]);
      const exporter = await rig.agent([{ connection, scopes: c.agentScopes, token_export: true }]);
      const ok = await rig.proxy(key, connection, c.call.method, c.call.path, c.call);
      assert.ok(ok.status >= 200 && ok.status < 300, `${ok.status} ${body(ok)}`);
      if (c.denied) {
        const before = persona.stats().apiRequests;
        const denied = await rig.proxy(key, connection, c.denied.method, c.denied.path, c.denied);
        assert.equal(denied.status, 403, body(denied));
        assert.equal(denied.body.code, 'policy_denied');
        assert.equal(persona.stats().apiRequests, before, 'a call the policy refuses never reaches the provider');
      }

      // 3. Refresh: the token expires, the next call is healed (refresh, retry) and answers 2xx.
      for (const mode of 'none' in Object(c.refresh) ? [] : ([c.refresh].flat() as RefreshMode[])) {
        const refreshesBefore = persona.stats().tokenRequests.refresh_token ?? 0;
        const expiriesBefore = persona.stats().forcedExpiries;
        if (mode === 'expire-next') persona.expireNextApiCalls(1);
        else await sandbox.invalidateAccessToken(await rig.exportToken(exporter, connection));
        const healed = await rig.proxy(key, connection, c.call.method, c.call.path, c.call);
        assert.ok(healed.status >= 200 && healed.status < 300, `${mode}: ${healed.status} ${body(healed)}`);
        assert.equal((persona.stats().tokenRequests.refresh_token ?? 0) - refreshesBefore, 1, `${mode}: one refresh`);
        if (mode === 'expire-next') assert.equal(persona.stats().forcedExpiries - expiriesBefore, 1);
        // In the provider's format (Atlassian: JSON body; a form one is refused) and with the newest
        // refresh token (rotation with a leeway: no reuse of a rotated-out one).
        assert.deepEqual(persona.stats().tokenErrors, {});
        assert.equal(persona.stats().reuseDetected, 0);
      }

      // 4. Missing scope: the token lost a scope upstream; the agent's scope still reaches the path.
      if ('call' in c.missingScope) {
        const ms = c.missingScope;
        persona.withdrawScopes(await rig.exportToken(exporter, connection), ms.withdraw);
        const refused = await rig.proxy(key, connection, ms.call.method, ms.call.path, ms.call);
        assert.ok(refused.status >= 400, `never 2xx: ${refused.status} ${body(refused)}`);
        if (ms.passedOn !== undefined) {
          assert.equal(refused.status, ms.passedOn, body(refused));
          assert.equal(refused.body?.code, undefined, 'the provider\'s own answer, not a Warrant problem');
        } else {
          assert.equal(refused.status, 403, body(refused));
          assert.equal(refused.body.code, 'scope_insufficient', body(refused));
          if (ms.requiredScope !== undefined) assert.equal(refused.body.required_scope, ms.requiredScope);
        }
      }

      // 5. Upstream revocation: the next call finds the grant dead; the connection needs a re-connect.
      await sandbox.revokeGrantOf(await rig.exportToken(exporter, connection));
      const dead = await rig.proxy(key, connection, c.call.method, c.call.path, c.call);
      assert.equal(dead.status, 424, body(dead));
      assert.equal(dead.body.code, 'reauth_required');
      assert.equal(dead.body.connection, connection);
      assert.equal((await rig.admin('GET', `/v1/connections/${connection}`)).body.status, 'reauth_required');

      // 6. DELETE of a second live connection revokes at the provider, in its shape, and verifies it.
      const second = await rig.connect(c.provider, c.scopes, { params: c.params, environment: c.environment });
      const revocationsBefore = persona.stats().revocations.length;
      const deleted = await rig.admin('DELETE', `/v1/connections/${second}`);
      assert.equal(deleted.status, 200, body(deleted));
      const revocations = persona.stats().revocations.slice(revocationsBefore);
      if (c.revocation) {
        assert.equal(deleted.body.revoked, true, body(deleted));
        assert.equal(deleted.body.verified, true, body(deleted));
        assert.notEqual(deleted.body.verification, 'none');
        assert.equal(revocations.length, 1, JSON.stringify(revocations));
        const [r] = revocations;
        assert.equal(r!.method, c.revocation.method);
        assert.equal(r!.auth, c.revocation.auth);
        assert.ok(r!.status >= 200 && r!.status < 300, JSON.stringify(r));
        if (c.revocation.contentType) assert.match(r!.contentType ?? '', new RegExp(`^${c.revocation.contentType}`));
        if (c.revocation.fields) assert.deepEqual(r!.fields, c.revocation.fields);
      } else {
        assert.equal(deleted.body.revoked, false, body(deleted));
        assert.equal(deleted.body.verified, false);
        assert.match(deleted.body.detail, /console/);
        assert.equal(revocations.length, 0);
      }
    });
  }
});
