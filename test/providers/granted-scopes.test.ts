import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { grantedScopes, loadCatalog } from '../../src/providers/index.ts';
import { normaliseTokenResponse } from '../../src/oauth/token-response.ts';
import { responseScopeSeparator } from '../../src/providers/index.ts';

const catalog = loadCatalog();
/** What the connection records of a token response: the oauth layer's normalisation, then the parse. */
const granted = (id: string, scope: unknown, requested: string[] = []) => {
  const provider = catalog.get(id)!;
  const n = normaliseTokenResponse({ access_token: 'at', token_type: 'bearer', scope }, responseScopeSeparator(provider));
  assert.ok(n.ok);
  return grantedScopes(provider, n.json.scope as string | undefined, requested);
};

// Regression (provider audit 2, 3, 5): GitHub answers "repo,gist" and the connection held one
// scope named "repo,gist"; Linear answers "read write" (or, for older apps, an array) to a
// comma-separated request; Microsoft answers https://graph.microsoft.com/mail.read for Mail.Read.
// Agents' grants matched none of them.
test('granted scopes are read as each provider writes them', () => {
  assert.deepEqual(granted('github', 'repo,gist', ['repo', 'gist']), ['repo', 'gist']);
  assert.deepEqual(granted('linear', 'read write', ['read', 'write']), ['read', 'write']);
  assert.deepEqual(granted('linear', ['read', 'write'], ['read', 'write']), ['read', 'write']);
  assert.deepEqual(granted('microsoft-graph', 'https://graph.microsoft.com/mail.read https://graph.microsoft.com/User.Read offline_access', ['Mail.Read', 'User.Read', 'offline_access']), [
    'Mail.Read',
    'User.Read',
    'offline_access',
  ]);
  assert.deepEqual(granted('google-gmail', 'https://www.googleapis.com/auth/gmail.readonly openid'), ['https://www.googleapis.com/auth/gmail.readonly', 'openid']);
  assert.equal(granted('github', undefined), undefined, 'no scope in the answer: the request was granted (RFC 6749 §5.1)');
});

test('property: whatever the separator, a joined answer parses back to its distinct scopes', () => {
  const scope = fc.stringMatching(/^[A-Za-z0-9:._\/-]{1,20}$/);
  fc.assert(
    fc.property(fc.constantFrom(' ', ',', ' '), fc.uniqueArray(scope, { minLength: 1, maxLength: 6, comparator: (a, b) => a.toLowerCase() === b.toLowerCase() }), (sep, scopes) => {
      const parsed = grantedScopes({ scope_separator: sep, scopes: {} }, scopes.join(sep), scopes);
      assert.deepEqual(parsed, scopes);
    }),
    { numRuns: 2_000 },
  );
});

// Regression: Microsoft never names offline_access in its answer, so every microsoft-graph
// connection listed it in missing_scopes although its refresh token came back.
test('a requested offline_access counts as granted when a refresh token is held, and only then', () => {
  const graph = catalog.get('microsoft-graph')!;
  const requested = ['offline_access', 'User.Read'];
  assert.deepEqual(grantedScopes(graph, 'https://graph.microsoft.com/user.read', requested, true), ['User.Read', 'offline_access']);
  assert.deepEqual(grantedScopes(graph, 'https://graph.microsoft.com/user.read', requested, false), ['User.Read']);
  assert.deepEqual(grantedScopes(graph, 'https://graph.microsoft.com/user.read', ['User.Read'], true), ['User.Read']);
});
