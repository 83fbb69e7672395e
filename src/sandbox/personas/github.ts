import type { Persona, TokenErrorCode } from './types.ts';

// GitHub OAuth apps ("Authorizing OAuth apps"; REST "OAuth authorizations" for revocation):
// tokens without expiry or refresh token, comma-separated scope answer, token errors as 200 with
// `error`, form-encoded answers unless Accept: application/json, DELETE /applications/{id}/grant.

const docs = 'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors';
const tokenErrors: Record<TokenErrorCode, string> = {
  invalid_request: 'invalid_request',
  invalid_client: 'incorrect_client_credentials',
  invalid_grant: 'bad_verification_code',
  unsupported_grant_type: 'unsupported_grant_type',
  redirect_uri_mismatch: 'redirect_uri_mismatch',
  invalid_code_verifier: 'bad_verification_code',
};
const notFound = { status: 404, body: { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' } };

export const github: Persona = {
  id: 'github',
  name: 'GitHub (OAuth app)',
  catalog: ['github'],
  hosts: ['github.com', 'api.github.com'],
  tenantKind: 'uuid',
  authorize: { url: 'https://github.com/login/oauth/authorize', separator: ' ' },
  token: {
    url: 'https://github.com/login/oauth/access_token',
    body: 'form',
    clientAuth: ['post'],
    sendsExpiresIn: false,
    refreshToken: 'never',
    rotation: 'never',
    prefix: { access: 'gho_' },
    formUnlessAcceptJson: true,
    response: (t) => ({ access_token: t.access_token, token_type: 'bearer', scope: t.scopes.join(',') }),
    error: (code, grantType) => ({
      status: 200,
      body: { error: code === 'invalid_grant' && grantType === 'refresh_token' ? 'bad_refresh_token' : tokenErrors[code], error_description: 'The sandbox refused the request.', error_uri: docs },
    }),
  },
  revocation: {
    url: 'https://api.github.com/applications/{client_id}/grant',
    method: 'DELETE',
    body: 'json',
    tokenFields: ['access_token'],
    auth: 'basic',
    ok: { status: 204 },
    fail: (reason) =>
      reason === 'bad_request'
        ? { status: 422, body: { message: 'Invalid request.', documentation_url: 'https://docs.github.com/rest/apps/oauth-applications#delete-an-app-authorization' } }
        : notFound,
  },
  api: {
    bases: ['https://api.github.com'],
    routes: [
      { method: 'GET', path: '/user', scopes: [], body: { login: 'sandbox-user', id: 1, type: 'User' } },
      { method: 'GET', path: '/user/emails', scopes: ['user:email', 'user'], body: [{ email: 'sandbox@example.com', primary: true, verified: true }] },
      { method: 'GET', path: '/user/repos', scopes: ['repo'], body: [{ id: 1, full_name: 'sandbox-user/private', private: true }] },
      { method: 'GET', path: '/repos/*/*', scopes: ['repo', 'public_repo'], body: { id: 1, full_name: 'sandbox-user/repo', private: false } },
      { method: 'PATCH', path: '/gists/*', scopes: ['gist'], body: { id: 'aa5a315d61ae9438b18d', public: false } },
      { method: 'GET', path: '/orgs/*', scopes: ['read:org', 'write:org', 'admin:org'], body: { login: 'sandbox-org', id: 2 } },
    ],
    refuse: (reason) => ({
      status: 401,
      body: { message: reason === 'missing' ? 'Requires authentication' : 'Bad credentials', documentation_url: 'https://docs.github.com/rest', status: '401' },
    }),
    missingScope: (needed, granted) => ({
      status: 403,
      body: { message: 'Forbidden', documentation_url: 'https://docs.github.com/rest', status: '403' },
      headers: { 'x-accepted-oauth-scopes': needed.join(', '), 'x-oauth-scopes': granted.join(', ') },
    }),
    headers: (granted) => ({ 'x-oauth-scopes': granted.join(', ') }),
  },
  notModelled: [
    'GitHub Apps (expiring user tokens, refresh tokens: see github-app)',
    'the device flow and DELETE /applications/{client_id}/token (single token)',
    'scope implication (repo implies repo:status …) beyond the route lists; private resources answering 404 instead of 403',
    'tokens revoked after a year unused, the 10-tokens-per-user/app/scope limit',
  ],
};
