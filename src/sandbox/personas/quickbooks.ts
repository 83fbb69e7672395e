import { rfcTokenError, type Persona } from './types.ts';

// QuickBooks Online / Intuit (developer.intuit.com OAuth 2.0): realmId on the callback, HTTP
// Basic token requests, x_refresh_token_expires_in, a refresh token that changes about once a day
// (the same one before), JSON revocation with Basic, API faults in {"Fault": {"Error": […]}}.

const fault = (status: number, type: string, code: string, message: string) => ({ status, body: { Fault: { Error: [{ Message: message, Detail: message, code }], type }, time: '2026-01-01T00:00:00.000-08:00' } });

export const quickbooks: Persona = {
  id: 'quickbooks',
  name: 'QuickBooks Online (Intuit)',
  catalog: ['quickbooks'],
  hosts: ['appcenter.intuit.com', 'oauth.platform.intuit.com', 'developer.api.intuit.com', 'quickbooks.api.intuit.com', 'sandbox-quickbooks.api.intuit.com'],
  tenantKind: 'numeric',
  authorize: { url: 'https://appcenter.intuit.com/connect/oauth2', separator: ' ', callbackParams: (tenantId) => ({ realmId: tenantId }) },
  token: {
    url: 'https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer',
    body: 'form',
    clientAuth: ['basic'],
    accessTtl: 3600,
    sendsExpiresIn: true,
    refreshToken: 'always',
    rotation: { afterSeconds: 86400 },
    prefix: { access: 'eyJlbmMiOiJBMTI4Q0JDLUhTMjU2Ii', refresh: 'AB1' },
    response: (t) => ({ token_type: 'bearer', access_token: t.access_token, expires_in: t.expires_in, refresh_token: t.refresh_token, x_refresh_token_expires_in: 8726400 }),
    error: (code) => rfcTokenError(code),
  },
  revocation: {
    url: 'https://developer.api.intuit.com/v2/oauth2/tokens/revoke',
    method: 'POST',
    body: 'json',
    tokenFields: ['token'],
    auth: 'basic',
    ok: { status: 200 },
    fail: (reason) => (reason === 'bad_client' ? { status: 401, body: { error: 'invalid_client' } } : { status: 400, body: { error: 'invalid_request' } }),
  },
  api: {
    bases: ['https://quickbooks.api.intuit.com/v3/company/{tenant}', 'https://sandbox-quickbooks.api.intuit.com/v3/company/{tenant}'],
    routes: [
      { method: 'GET', path: '/companyinfo/*', scopes: ['com.intuit.quickbooks.accounting'], body: { CompanyInfo: { CompanyName: 'Sandbox Company' } } },
      { method: 'GET', path: '/query', scopes: ['com.intuit.quickbooks.accounting'], body: { QueryResponse: {} } },
      { method: 'POST', path: '/invoice', scopes: ['com.intuit.quickbooks.accounting'], body: { Invoice: { Id: '1' } } },
    ],
    refuse: () => ({ ...fault(401, 'AUTHENTICATION', '3200', 'message=AuthenticationFailed; errorCode=003200; statusCode=401'), headers: { 'www-authenticate': 'Bearer realm="Intuit", error="invalid_token"' } }),
    missingScope: () => fault(403, 'AUTHORIZATION', '3100', 'message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403'),
  },
  notModelled: [
    'the payments host (com.intuit.quickbooks.payment) and separate sandbox/production app keys (one client serves both)',
    'the 100-day rolling and 5-year absolute refresh-token limits',
    'id_token / userinfo (openid scopes)',
  ],
};
