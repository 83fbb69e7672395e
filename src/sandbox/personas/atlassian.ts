import { rfcTokenError, type Persona } from './types.ts';

// Atlassian 3LO (developer.atlassian.com "OAuth 2.0 (3LO) apps", "Deprecating persistent refresh
// tokens"): JSON token requests with the client secret in the body, rotating refresh tokens with a
// 10-minute leeway and reuse revoking the family, sites from accessible-resources, the API under
// /ex/{product}/{cloud_id}, and a missing scope answered 401 "scope does not match".

export const atlassian: Persona = {
  id: 'atlassian',
  name: 'Atlassian (Jira and Confluence Cloud)',
  catalog: ['atlassian-jira', 'atlassian-confluence'],
  hosts: ['auth.atlassian.com', 'api.atlassian.com'],
  tenantKind: 'uuid',
  authorize: { url: 'https://auth.atlassian.com/authorize', separator: ' ', requiredParams: { audience: 'api.atlassian.com' } },
  token: {
    url: 'https://auth.atlassian.com/oauth/token',
    body: 'json',
    clientAuth: ['json'],
    accessTtl: 3600,
    sendsExpiresIn: true,
    refreshToken: { scope: 'offline_access' },
    rotation: 'always',
    graceSeconds: 600,
    reuseRevokesGrant: true,
    response: (t) => ({ access_token: t.access_token, expires_in: t.expires_in, token_type: 'Bearer', refresh_token: t.refresh_token, scope: t.scopes.join(' ') }),
    error: (code) =>
      code === 'invalid_grant'
        ? { status: 403, body: { error: 'invalid_grant', error_description: 'Unknown or invalid refresh token.' } }
        : code === 'invalid_client'
          ? { status: 401, body: { error: 'access_denied', error_description: 'Unauthorized' } }
          : rfcTokenError(code),
  },
  tenants: {
    url: 'https://api.atlassian.com/oauth/token/accessible-resources',
    body: (tenantId, scopes) => [{ id: tenantId, url: 'https://sandbox-site.atlassian.net', name: 'sandbox-site', scopes, avatarUrl: 'https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/rocket.png' }],
  },
  api: {
    bases: ['https://api.atlassian.com/ex/jira/{tenant}', 'https://api.atlassian.com/ex/confluence/{tenant}'],
    routes: [
      { method: 'GET', path: '/rest/api/3/myself', scopes: ['read:jira-user'], body: { accountId: '5b10ac8d82e05b22cc7d4ef5', displayName: 'Sandbox User' } },
      { method: 'GET', path: '/rest/api/3/issue/*', scopes: ['read:jira-work'], body: { id: '10000', key: 'SBX-1', fields: { summary: 'first issue' } } },
      { method: 'POST', path: '/rest/api/3/issue', scopes: ['write:jira-work'], status: 201, body: { id: '10001', key: 'SBX-2' } },
      { method: 'GET', path: '/rest/api/3/project/*', scopes: ['read:jira-work', 'manage:jira-project'], body: { id: '10000', key: 'SBX', name: 'Sandbox' } },
      { method: 'GET', path: '/wiki/rest/api/content/*', scopes: ['read:confluence-content.all'], body: { id: '65537', type: 'page', title: 'Home' } },
      { method: 'GET', path: '/wiki/api/v2/pages/*', scopes: ['read:page:confluence'], body: { id: '65537', title: 'Home' } },
    ],
    refuse: () => ({ status: 401, body: { code: 401, message: 'Unauthorized' } }),
    missingScope: () => ({ status: 401, body: { code: 401, message: 'Unauthorized; scope does not match' } }),
  },
  notModelled: [
    'token revocation (Atlassian has no public endpoint: users remove apps under Connected apps)',
    '90-day inactivity and 365-day absolute refresh-token expiry',
    'several sites per grant; granular scopes (read:issue:jira …) opening the classic routes',
    'form-encoded token requests, which the real endpoint may also accept (the persona refuses them, to check the JSON format)',
  ],
};
