import { rfcTokenError, type Persona } from './types.ts';

// Microsoft identity platform v2.0 + Graph (learn.microsoft.com v2-oauth2-auth-code-flow,
// refresh-tokens): granted scopes answered with the Graph prefix, a new refresh token on every use
// while the old one keeps working, AADSTS error bodies, Graph errors nested in error.code.

const graph = 'https://graph.microsoft.com/';
const oidc = new Set(['openid', 'profile', 'email', 'offline_access']);
const graphError = (status: number, code: string, message: string) => ({ status, body: { error: { code, message, innerError: { date: '2026-01-01T00:00:00', 'request-id': '00000000-0000-4000-a000-000000000000' } } } });

export const microsoft: Persona = {
  id: 'microsoft',
  name: 'Microsoft 365 (Entra ID + Graph)',
  catalog: ['microsoft-graph'],
  hosts: ['login.microsoftonline.com', 'graph.microsoft.com'],
  tenantKind: 'uuid',
  authorize: { url: 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize', separator: ' ' },
  token: {
    url: 'https://login.microsoftonline.com/common/oauth2/v2.0/token',
    body: 'form',
    clientAuth: ['post', 'basic'],
    accessTtl: 4452,
    sendsExpiresIn: true,
    refreshToken: { scope: 'offline_access' },
    rotation: 'always',
    reusable: true,
    prefix: { access: 'eyJ0eXAiOiJKV1Qi.', refresh: '0.AXsA' },
    response: (t) => ({
      token_type: 'Bearer',
      scope: t.scopes.filter((s) => !oidc.has(s)).map((s) => `${graph}${s.replace(/^https:\/\/graph\.microsoft\.com\//i, '').toLowerCase()}`).join(' '),
      expires_in: t.expires_in,
      ext_expires_in: t.expires_in,
      access_token: t.access_token,
      refresh_token: t.refresh_token,
    }),
    error: (code) => {
      const base = rfcTokenError(code);
      const aadsts = code === 'invalid_client' ? 7000215 : code === 'invalid_grant' ? 70000 : 900144;
      return { ...base, body: { ...(base.body as object), error_codes: [aadsts], timestamp: '2026-01-01 00:00:00Z', trace_id: '00000000-0000-4000-a000-000000000000', correlation_id: '00000000-0000-4000-a000-000000000001' } };
    },
  },
  api: {
    bases: ['https://graph.microsoft.com/v1.0'],
    routes: [
      { method: 'GET', path: '/me', scopes: ['User.Read'], body: { id: '00000000-0000-4000-a000-000000000002', displayName: 'Sandbox User' } },
      { method: 'GET', path: '/me/messages', scopes: ['Mail.Read', 'Mail.ReadWrite'], body: { value: [] } },
      { method: 'POST', path: '/me/sendMail', scopes: ['Mail.Send'], status: 202 },
      { method: 'GET', path: '/me/events', scopes: ['Calendars.Read', 'Calendars.ReadWrite'], body: { value: [] } },
      { method: 'GET', path: '/me/drive/root/children', scopes: ['Files.Read', 'Files.ReadWrite'], body: { value: [] } },
    ],
    refuse: (reason) => ({
      ...graphError(401, 'InvalidAuthenticationToken', reason === 'expired' ? 'Lifetime validation failed, the token is expired.' : 'Access token validation failure. Invalid audience.'),
      headers: { 'www-authenticate': 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"' },
    }),
    missingScope: (needed) =>
      needed.some((s) => /^(mail|calendars|files)\./i.test(s)) ? graphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.') : graphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.'),
  },
  notModelled: [
    'token revocation (Microsoft has none per grant; revokeSignInSessions ends every session)',
    'JWT access tokens (these are opaque), id_token, tenant-specific issuers',
    'the 90-day sliding refresh-token expiry and 24-hour SPA refresh tokens; randomised 60–90 minute lifetimes (fixed at 4452 s)',
  ],
};
