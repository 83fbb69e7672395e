import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startIdpEndpoint, json, reply, type IdpEndpoint } from '../oauth/idp-endpoint.ts';
import { accountOf } from '../../src/tokens/account.ts';
import type { TokenSet } from '../../src/oauth/index.ts';

// Whose grant it is decides whether a re-connect may revive a connection (security review,
// high 4: every Google entry dropped the ID token and had no introspection, so the account check
// was skipped). The account comes from the ID token, else userinfo, else introspection.

let idp: IdpEndpoint;
let userinfo: { status: number; body: unknown };
let introspection: unknown;

before(async () => {
  idp = await startIdpEndpoint();
  idp.answer((req, res) => {
    if (req.url === '/userinfo') {
      assert.equal(req.headers.authorization, 'Bearer at-1');
      return json(userinfo.status, userinfo.body)(req, res);
    }
    if (req.url === '/introspect') return json(200, introspection)(req, res);
    return reply(404)(req, res);
  });
});
after(() => idp?.close());

const client = () =>
  idp.client({
    definition: {
      environments: {
        production: {
          authorization_url: `${idp.url}/authorize`,
          token_url: `${idp.url}/token`,
          introspection_url: `${idp.url}/introspect`,
          userinfo_url: `${idp.url}/userinfo`,
          issuer: 'https://idp.example',
          api_base_url: `${idp.url}/api`,
        },
      },
    },
  });
const tokens = (extra: Record<string, unknown> = {}): TokenSet => ({ access_token: 'at-1', token_type: 'bearer', extra });

test('the ID token first, when its issuer is the provider\'s; then userinfo; then introspection; else nobody', async () => {
  userinfo = { status: 200, body: { sub: 'from-userinfo' } };
  introspection = { active: true, sub: 'from-introspection' };
  const c = client();
  assert.equal(await accountOf({ client: c, tokens: tokens({ id_token_claims: { sub: 'from-id-token', iss: 'https://idp.example' } }), timeoutMs: 2000 }), 'from-id-token');
  assert.equal(await accountOf({ client: c, tokens: tokens({ id_token_claims: { sub: 'forged', iss: 'https://other.example' } }), timeoutMs: 2000 }), 'from-userinfo');
  userinfo = { status: 401, body: { error: 'invalid_token' } };
  assert.equal(await accountOf({ client: c, tokens: tokens(), timeoutMs: 2000 }), 'from-introspection');
  userinfo = { status: 200, body: { name: 'no sub' } };
  introspection = { active: false };
  assert.equal(await accountOf({ client: c, tokens: tokens(), timeoutMs: 2000 }), undefined);
});
