import type { Persona } from './types.ts';

// Linear OAuth 2.0 (linear.app/developers/oauth-2-0-authentication): comma-separated scope request,
// space-separated answer, 24-hour tokens rotated on every refresh, revocation with the token as
// Bearer, a GraphQL API whose errors sit in errors[].extensions.

const gqlError = (status: number, code: string, message: string) => ({ status, body: { errors: [{ message, extensions: { type: code === 'AUTHENTICATION_ERROR' ? 'authentication error' : 'forbidden', code, statusCode: status, userError: true } }] } });

export const linear: Persona = {
  id: 'linear',
  name: 'Linear',
  catalog: ['linear'],
  hosts: ['linear.app', 'api.linear.app'],
  tenantKind: 'uuid',
  authorize: { url: 'https://linear.app/oauth/authorize', separator: ',' },
  token: {
    url: 'https://api.linear.app/oauth/token',
    body: 'form',
    clientAuth: ['post', 'basic'],
    accessTtl: 86399,
    sendsExpiresIn: true,
    refreshToken: 'always',
    rotation: 'always',
    prefix: { access: 'lin_oauth_', refresh: 'lin_refresh_' },
    response: (t) => ({ access_token: t.access_token, token_type: 'Bearer', expires_in: t.expires_in, refresh_token: t.refresh_token, scope: t.scopes.join(' ') }),
    error: (code) => ({ status: code === 'invalid_client' ? 401 : 400, body: { error: code === 'invalid_code_verifier' || code === 'redirect_uri_mismatch' ? 'invalid_grant' : code, error_description: 'The sandbox refused the request.' } }),
  },
  revocation: {
    url: 'https://api.linear.app/oauth/revoke',
    method: 'POST',
    body: 'none',
    tokenFields: ['access_token', 'refresh_token'],
    auth: 'bearer',
    ok: { status: 200 },
    fail: () => ({ status: 400, body: { error: 'invalid_token' } }),
  },
  api: {
    bases: ['https://api.linear.app'],
    routes: [
      { method: 'POST', path: '/graphql', scopes: ['write', 'issues:create', 'comments:create', 'admin'], bodyMatch: /"query"\s*:\s*"\s*mutation\b/, body: { data: { issueCreate: { success: true } } } },
      { method: 'POST', path: '/graphql', scopes: ['read'], body: { data: { viewer: { id: '00000000-0000-4000-a000-000000000008', name: 'Sandbox User' } } } },
    ],
    refuse: () => gqlError(401, 'AUTHENTICATION_ERROR', 'Authentication required, not authenticated'),
    missingScope: (needed) => gqlError(403, 'FORBIDDEN', `Invalid scope: ${needed[0]} required`),
  },
  notModelled: [
    'apps created before 2023-12 answering scope as an array; actor=app tokens',
    'the GraphQL status codes of errors (Linear answers some with 200 or 400: unverified; 401 and 403 here)',
    'which mutation needs which scope beyond "a mutation needs write, issues:create, comments:create or admin"',
  ],
};
