import { rfcTokenError, type Persona } from './types.ts';

// Google OAuth 2.0 for web server apps (developers.google.com/identity/protocols/oauth2/web-server):
// refresh token only with access_type=offline, not rotated; `iss` on the authorization response;
// revocation by POST /revoke?token= or a form; APIs answer 401 with WWW-Authenticate and a missing
// scope 403 ACCESS_TOKEN_SCOPE_INSUFFICIENT in error.details[].reason.

const realm = 'Bearer realm="https://accounts.google.com/"';
const g = (s: string) => `https://www.googleapis.com/auth/${s}`;

export const google: Persona = {
  id: 'google',
  name: 'Google (Gmail, Drive, Calendar, Sheets)',
  catalog: ['google-gmail', 'google-drive', 'google-calendar', 'google-sheets'],
  hosts: ['accounts.google.com', 'oauth2.googleapis.com', 'gmail.googleapis.com', 'www.googleapis.com', 'sheets.googleapis.com', 'openidconnect.googleapis.com'],
  tenantKind: 'uuid',
  authorize: { url: 'https://accounts.google.com/o/oauth2/v2/auth', separator: ' ', iss: 'https://accounts.google.com' },
  discovery: { issuer: 'https://accounts.google.com', codeChallengeMethods: ['plain', 'S256'] },
  token: {
    url: 'https://oauth2.googleapis.com/token',
    body: 'form',
    clientAuth: ['post', 'basic'],
    accessTtl: 3599,
    sendsExpiresIn: true,
    refreshToken: { param: 'access_type', value: 'offline' },
    rotation: 'never',
    prefix: { access: 'ya29.', refresh: '1//' },
    response: (t) => ({ access_token: t.access_token, expires_in: t.expires_in, refresh_token: t.refresh_token, scope: t.scopes.join(' '), token_type: 'Bearer' }),
    error: (code) =>
      code === 'invalid_grant' ? { status: 400, body: { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' } } : rfcTokenError(code),
  },
  revocation: {
    url: 'https://oauth2.googleapis.com/revoke',
    method: 'POST',
    body: 'query-or-form',
    tokenFields: ['token'],
    auth: 'none',
    ok: { status: 200, body: {} },
    fail: () => ({ status: 400, body: { error: 'invalid_token', error_description: 'Token expired or revoked' } }),
  },
  api: {
    bases: ['https://gmail.googleapis.com', 'https://www.googleapis.com', 'https://sheets.googleapis.com'],
    routes: [
      { method: 'GET', path: '/gmail/v1/users/*/profile', scopes: [g('gmail.readonly'), g('gmail.modify'), 'https://mail.google.com/'], body: { emailAddress: 'sandbox@example.com', messagesTotal: 2 } },
      { method: 'POST', path: '/gmail/v1/users/*/messages/send', scopes: [g('gmail.send'), g('gmail.compose'), g('gmail.modify'), 'https://mail.google.com/'], body: { id: '18c0000000000001', labelIds: ['SENT'] } },
      { method: 'GET', path: '/drive/v3/files', scopes: [g('drive'), g('drive.readonly'), g('drive.file'), g('drive.metadata.readonly')], body: { kind: 'drive#fileList', files: [] } },
      { method: 'GET', path: '/calendar/v3/calendars/*/events', scopes: [g('calendar'), g('calendar.readonly'), g('calendar.events'), g('calendar.events.readonly')], body: { kind: 'calendar#events', items: [] } },
      { method: 'GET', path: '/v4/spreadsheets/*', scopes: [g('spreadsheets'), g('spreadsheets.readonly'), g('drive'), g('drive.readonly')], body: { spreadsheetId: 'sheet-1' } },
    ],
    refuse: () => ({
      status: 401,
      body: {
        error: {
          code: 401,
          message: 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
          errors: [{ message: 'Invalid Credentials', domain: 'global', reason: 'authError', location: 'Authorization', locationType: 'header' }],
          status: 'UNAUTHENTICATED',
        },
      },
      headers: { 'www-authenticate': `${realm}, error="invalid_token"` },
    }),
    missingScope: (needed) => ({
      status: 403,
      body: {
        error: {
          code: 403,
          message: 'Request had insufficient authentication scopes.',
          errors: [{ message: 'Insufficient Permission', domain: 'global', reason: 'insufficientPermissions' }],
          status: 'PERMISSION_DENIED',
          details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'ACCESS_TOKEN_SCOPE_INSUFFICIENT', domain: 'googleapis.com' }],
        },
      },
      headers: { 'www-authenticate': `${realm}, error="insufficient_scope", scope="${needed.join(' ')}"` },
    }),
  },
  notModelled: [
    'id_token and userinfo (OpenID Connect); include_granted_scopes merging earlier grants',
    'the 6-month idle expiry, the 100-refresh-tokens-per-account limit, 7-day tokens in Testing mode',
    'a refresh token only on first consent without prompt=consent (one is issued on every offline consent)',
  ],
};
