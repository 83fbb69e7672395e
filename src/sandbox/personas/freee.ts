import type { Persona } from './types.ts';

// freee Accounting (developer.freee.co.jp reference, faq/token_lifetime): client secret in the form
// body, company_id in the token answer, 6-hour access tokens, single-use refresh tokens, errors in
// {"status_code", "errors": [{"type", "messages"}]}.

const freeeError = (status: number, message: string) => ({ status, body: { status_code: status, errors: [{ type: 'status', messages: [message] }] } });

export const freee: Persona = {
  id: 'freee',
  name: 'freee Accounting',
  catalog: ['freee'],
  hosts: ['accounts.secure.freee.co.jp', 'api.freee.co.jp'],
  tenantKind: 'numeric',
  authorize: { url: 'https://accounts.secure.freee.co.jp/public_api/authorize', separator: ' ' },
  token: {
    url: 'https://accounts.secure.freee.co.jp/public_api/token',
    body: 'form',
    clientAuth: ['post'],
    accessTtl: 21600,
    sendsExpiresIn: true,
    refreshToken: 'always',
    rotation: 'always',
    response: (t) => ({
      access_token: t.access_token,
      token_type: 'bearer',
      expires_in: t.expires_in,
      refresh_token: t.refresh_token,
      scope: t.scopes.join(' '),
      created_at: Math.floor(t.issuedAt / 1000),
      company_id: Number(t.tenantId.slice(0, 9)),
    }),
    // A used refresh token answers 401 (catalog notes); other failures 400 or 401 as RFC 6749.
    error: (code) => ({ status: code === 'invalid_client' || code === 'invalid_grant' ? 401 : 400, body: { error: code === 'invalid_code_verifier' || code === 'redirect_uri_mismatch' ? 'invalid_grant' : code, error_description: 'The sandbox refused the request.' } }),
  },
  revocation: {
    url: 'https://accounts.secure.freee.co.jp/public_api/revoke',
    method: 'POST',
    body: 'form',
    tokenFields: ['token'],
    auth: 'client',
    ok: { status: 200, body: {} },
    fail: (reason) => (reason === 'bad_client' ? { status: 401, body: { error: 'invalid_client' } } : reason === 'bad_request' ? { status: 400, body: { error: 'invalid_request' } } : { status: 200, body: {} }),
  },
  api: {
    bases: ['https://api.freee.co.jp/api/1'],
    routes: [
      { method: 'GET', path: '/companies', scopes: ['read'], body: { companies: [] } },
      { method: 'GET', path: '/deals', scopes: ['read'], body: { deals: [] } },
      { method: 'POST', path: '/deals', scopes: ['write'], status: 201, body: { deal: { id: 1 } } },
    ],
    refuse: (reason) => freeeError(401, reason === 'expired' ? 'アクセストークンの有効期限が切れています' : 'アクセストークンが無効です'),
    missingScope: () => freeeError(403, 'このアプリケーションはこの操作を実行する権限がありません'),
  },
  notModelled: [
    'company_id checks on API calls (any company_id is accepted); the 90-day refresh-token lifetime',
    'the exact texts of API error messages (freee answers in Japanese; these are close, not verified)',
    'app-store permissions finer than read/write',
  ],
};
