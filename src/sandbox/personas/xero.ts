import { rfc7009, rfcTokenError, stableUuid, type Persona } from './types.ts';

// Xero (developer.xero.com guides/oauth2/auth-flow, faq/oauth2): 30-minute access tokens,
// single-use refresh tokens with a 30-minute grace, tenants from GET /connections, every
// accounting call naming one in Xero-tenant-id, RFC 7009 revocation with HTTP Basic.

const problem = (status: number, title: string, detail: string) => ({ Type: null, Title: title, Status: status, Detail: detail });
const transactions = ['accounting.transactions', 'accounting.invoices'];

export const xero: Persona = {
  id: 'xero',
  name: 'Xero',
  catalog: ['xero'],
  hosts: ['login.xero.com', 'identity.xero.com', 'api.xero.com'],
  tenantKind: 'uuid',
  authorize: { url: 'https://login.xero.com/identity/connect/authorize', separator: ' ' },
  discovery: { issuer: 'https://identity.xero.com', codeChallengeMethods: ['S256'] },
  token: {
    url: 'https://identity.xero.com/connect/token',
    body: 'form',
    clientAuth: ['basic', 'post'],
    accessTtl: 1800,
    sendsExpiresIn: true,
    refreshToken: { scope: 'offline_access' },
    rotation: 'always',
    graceSeconds: 1800,
    response: (t) => ({ access_token: t.access_token, expires_in: t.expires_in, token_type: 'Bearer', refresh_token: t.refresh_token, scope: t.scopes.join(' ') }),
    error: (code) => rfcTokenError(code),
  },
  revocation: { url: 'https://identity.xero.com/connect/revocation', method: 'POST', body: 'form', tokenFields: ['token'], auth: 'basic', ...rfc7009 },
  tenants: {
    url: 'https://api.xero.com/connections',
    body: (tenantId) => [
      {
        id: stableUuid(`connection:${tenantId}`),
        authEventId: stableUuid(`auth-event:${tenantId}`),
        tenantId,
        tenantType: 'ORGANISATION',
        tenantName: 'Sandbox Organisation',
        createdDateUtc: '2026-01-01T00:00:00.0000000',
        updatedDateUtc: '2026-01-01T00:00:00.0000000',
      },
    ],
  },
  api: {
    bases: ['https://api.xero.com/api.xro/2.0'],
    tenantHeader: { name: 'xero-tenant-id', wrong: { status: 403, body: problem(403, 'Forbidden', 'AuthenticationUnsuccessful') } },
    routes: [
      { method: 'GET', path: '/Organisation', scopes: ['accounting.settings.read', 'accounting.settings'], body: { Organisations: [{ Name: 'Sandbox Organisation' }] } },
      { method: 'GET', path: '/Invoices', scopes: ['accounting.transactions.read', 'accounting.invoices.read', ...transactions], body: { Invoices: [] } },
      { method: 'PUT', path: '/Invoices', scopes: transactions, body: { Invoices: [{ InvoiceID: '00000000-0000-4000-a000-000000000001' }] } },
      { method: 'GET', path: '/Contacts', scopes: ['accounting.contacts.read', 'accounting.contacts'], body: { Contacts: [] } },
    ],
    refuse: (reason) => ({
      status: 401,
      body: problem(401, 'Unauthorized', reason === 'expired' ? 'TokenExpired: token expired' : 'AuthenticationUnsuccessful'),
      headers: { 'www-authenticate': `Bearer error="invalid_token"` },
    }),
    missingScope: () => ({ status: 403, body: problem(403, 'Forbidden', 'AuthorizationUnsuccessful') }),
  },
  notModelled: [
    'id_token and OpenID Connect claims; the `iss` authorization response parameter',
    'several tenants per grant and DELETE /connections/{id}',
    'the 60-day idle expiry of refresh tokens; rate limits (60/min, 5000/day) and their headers',
    'granular-scope migration rules (both broad and granular scope names open the routes)',
  ],
};
