import { test } from 'node:test';
import assert from 'node:assert/strict';
import { providerSchema } from '../../src/providers/index.ts';
import { connectionFindings } from '../../src/doctor/connections.ts';

const DAY = 24 * 3600 * 1000;
const now = Date.UTC(2026, 0, 1);
const provider = (extra: Record<string, unknown> = {}) =>
  providerSchema.parse({
    id: 'acme',
    auth: 'oauth2',
    client_id: 'acme-app',
    default_scopes: ['offline_access'],
    environments: { production: { authorization_url: 'https://id.acme.example/a', token_url: 'https://id.acme.example/t', api_base_url: 'https://api.acme.example' } },
    ...extra,
  });
const row = (extra: Record<string, unknown> = {}) => ({
  id: 'conn_1',
  provider: 'acme',
  environment: 'production',
  status: 'active' as const,
  scopes: JSON.stringify(['read', 'write']),
  requested_scopes: JSON.stringify(['read', 'write', 'offline_access']),
  expires_at: now + 3600_000,
  last_refreshed_at: now,
  last_error: null,
  created_at: now - DAY,
  grant_started_at: null,
  ...extra,
});
const find = (findings: ReturnType<typeof connectionFindings>, check: string) => findings.find((f) => f.check === check);

test('a healthy connection: every line ok, default scopes not required back', () => {
  const findings = connectionFindings(row(), provider({ token_lifetime: 3600, refresh_token_lifetime: 365 * 24 * 3600 }), now);
  assert.deepEqual(findings.map((f) => [f.check, f.verdict]), [['status', 'ok'], ['scopes', 'ok'], ['token-lifetime', 'ok'], ['grant-lifetime', 'ok']]);
  assert.ok(findings.every((f) => f.subject === 'acme/production/conn_1'));
});

test('reauth_required and error are errors with the re-connect hint', () => {
  const dead = find(connectionFindings(row({ status: 'reauth_required' }), provider(), now), 'status');
  assert.equal(dead?.verdict, 'error');
  assert.match(dead.fix, /POST \/v1\/connections\/conn_1\/reconnect-link/);
  const failing = find(connectionFindings(row({ status: 'error', last_error: 'invalid_client: the IdP refused' }), provider(), now), 'status');
  assert.equal(failing?.verdict, 'error');
  assert.match(failing.detail, /invalid_client/);
});

test('scopes granted narrower than requested are named', () => {
  const f = find(connectionFindings(row({ scopes: JSON.stringify(['READ']) }), provider(), now), 'scopes');
  assert.equal(f?.verdict, 'warn');
  assert.match(f.detail, /granted narrower than requested: write not granted/);
});

test('observed token lifetime against the catalog: longer in the catalog is an error, shorter a warning, 20% tolerated', () => {
  const observed60 = row({ expires_at: now + 60_000 });
  const longer = find(connectionFindings(observed60, provider({ token_lifetime: 3600 }), now), 'token-lifetime');
  assert.equal(longer?.verdict, 'error');
  assert.match(longer.detail, /access tokens live 60 s but the catalog says 3600 s: .*serve expired tokens/);
  assert.match(longer.fix, /token_lifetime: 60/);
  assert.equal(find(connectionFindings(row(), provider({ token_lifetime: 600 }), now), 'token-lifetime')?.verdict, 'warn');
  assert.equal(find(connectionFindings(row(), provider({ token_lifetime: 3100 }), now), 'token-lifetime')?.verdict, 'ok');
  const unknown = find(connectionFindings(row({ expires_at: null }), provider(), now), 'token-lifetime');
  assert.equal(unknown?.verdict, 'warn');
  assert.match(unknown.detail, /no expires_in and the catalog has no token_lifetime/);
});

test("a grant's absolute lifetime: counted from grant_started_at, warn inside 30 days, error inside 2", () => {
  const year = { refresh_token_lifetime: 365 * 24 * 3600 };
  const at = (startedDaysAgo: number, extra = {}) => find(connectionFindings(row({ grant_started_at: now - startedDaysAgo * DAY, ...extra }), provider(year), now), 'grant-lifetime');
  assert.equal(at(300)?.verdict, 'ok');
  const soon = at(345);
  assert.equal(soon?.verdict, 'warn');
  assert.match(soon.detail, /dies for good at 2026-01-21T00:00:00Z \(in 20 days\)/);
  assert.equal(at(364)?.verdict, 'error');
  assert.equal(at(400)?.verdict, 'error');
  // Without grant_started_at, created_at (one day ago) is the start.
  assert.equal(find(connectionFindings(row(), provider(year), now), 'grant-lifetime')?.verdict, 'ok');
});

test('a connection whose provider left the catalog is an error', () => {
  const [f] = connectionFindings(row(), undefined, now);
  assert.equal(f?.verdict, 'error');
  assert.match(f.detail, /provider acme is not in the catalog/);
});
