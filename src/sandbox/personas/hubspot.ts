import type { Persona } from './types.ts';

// HubSpot OAuth (developers.hubspot.com manage-oauth-tokens, 2026-03 API): form token requests
// with the secret in the body, 30-minute access tokens, refresh tokens neither rotated nor
// expiring, errors with status/category, a missing scope 403 MISSING_SCOPES.

const hubError = (status: number, category: string, message: string, extra: object = {}) => ({ status, body: { status: 'error', message, correlationId: '00000000-0000-4000-a000-000000000009', category, ...extra } });

export const hubspot: Persona = {
  id: 'hubspot',
  name: 'HubSpot',
  catalog: ['hubspot'],
  hosts: ['app.hubspot.com', 'api.hubapi.com'],
  tenantKind: 'numeric',
  authorize: { url: 'https://app.hubspot.com/oauth/authorize', separator: ' ' },
  token: {
    url: 'https://api.hubapi.com/oauth/2026-03/token',
    body: 'form',
    clientAuth: ['post'],
    accessTtl: 1800,
    sendsExpiresIn: true,
    refreshToken: 'always',
    rotation: 'never',
    echoRefreshToken: true,
    prefix: { access: 'CIrT', refresh: 'na1-' },
    response: (t) => ({ token_type: 'bearer', refresh_token: t.refresh_token, access_token: t.access_token, expires_in: t.expires_in, hub_id: Number(t.tenantId.slice(0, 8)) }),
    error: (code, grantType) => ({
      status: 400,
      body: {
        status: code === 'invalid_grant' ? (grantType === 'refresh_token' ? 'BAD_REFRESH_TOKEN' : 'BAD_AUTH_CODE') : code === 'invalid_client' ? 'BAD_CLIENT_ID' : 'BAD_REQUEST',
        message: 'The sandbox refused the request.',
        correlationId: '00000000-0000-4000-a000-00000000000a',
        error: code === 'invalid_code_verifier' || code === 'redirect_uri_mismatch' ? 'invalid_grant' : code,
        error_description: 'The sandbox refused the request.',
      },
    }),
  },
  revocation: {
    url: 'https://api.hubapi.com/oauth/2026-03/token/revoke',
    method: 'POST',
    body: 'form',
    tokenFields: ['token'],
    auth: 'client',
    ok: { status: 204 },
    fail: (reason) => (reason === 'bad_client' ? hubError(401, 'INVALID_AUTHENTICATION', 'Invalid client.') : hubError(400, 'VALIDATION_ERROR', 'Token not found.')),
  },
  introspection: { url: 'https://api.hubapi.com/oauth/2026-03/token/introspect', body: 'form', auth: 'client' },
  api: {
    bases: ['https://api.hubapi.com'],
    routes: [
      { method: 'GET', path: '/crm/v3/objects/contacts', scopes: ['crm.objects.contacts.read', 'crm.objects.contacts.write'], body: { results: [] } },
      { method: 'POST', path: '/crm/v3/objects/contacts', scopes: ['crm.objects.contacts.write'], status: 201, body: { id: '1' } },
      { method: 'GET', path: '/crm/v3/objects/deals', scopes: ['crm.objects.deals.read', 'crm.objects.deals.write'], body: { results: [] } },
    ],
    refuse: (reason) =>
      reason === 'expired'
        ? hubError(401, 'EXPIRED_AUTHENTICATION', 'The OAuth token used to make this call expired.')
        : hubError(401, 'INVALID_AUTHENTICATION', 'Authentication credentials not found.'),
    missingScope: (needed) =>
      hubError(403, 'MISSING_SCOPES', "This app hasn't been granted all required scopes to make this call.", {
        errors: [{ message: 'One or more of the following scopes are required.', context: { requiredGranularScopes: [...needed] } }],
        links: { scopes: 'https://developers.hubspot.com/scopes' },
      }),
  },
  notModelled: [
    'the exact request and answer of the 2026-03 revoke and introspect endpoints (modelled as RFC 7009/7662 with the secret in the form)',
    'optional_scope, uninstalls ending the grant, rate-limit headers',
  ],
};
