import { createHmac } from 'node:crypto';
import { rfc7009, rfcTokenError, type Persona } from './types.ts';

// Salesforce web server flow (help.salesforce.com remoteaccess_oauth_web_server_flow, "Refresh
// token rotation"): no expires_in; instance_url, id, issued_at and signature in every answer; the
// REST API at {instance_url}/services/data/vXX.X answering 401 INVALID_SESSION_ID when the session
// ended; refresh tokens rotated, reuse of an old one revoking the grant.

const instanceHost = 'sandbox-org.my.salesforce.com';
const orgId = '00D000000000001EAA';
const userId = '005000000000001AAA';

export const salesforce: Persona = {
  id: 'salesforce',
  name: 'Salesforce',
  catalog: ['salesforce'],
  hosts: ['login.salesforce.com', 'test.salesforce.com', instanceHost],
  tenantKind: 'uuid',
  authorize: { url: 'https://login.salesforce.com/services/oauth2/authorize', separator: ' ' },
  discovery: { issuer: 'https://login.salesforce.com', codeChallengeMethods: ['S256'] },
  token: {
    url: 'https://login.salesforce.com/services/oauth2/token',
    body: 'form',
    clientAuth: ['post', 'basic'],
    accessTtl: 7200,
    sendsExpiresIn: false,
    refreshToken: { scope: 'refresh_token' },
    rotation: 'always',
    reuseRevokesGrant: true,
    prefix: { access: `${orgId}!AQ`, refresh: '5Aep861' },
    response(t) {
      const id = `https://login.salesforce.com/id/${orgId}/${userId}`;
      const issuedAt = String(t.issuedAt);
      return {
        access_token: t.access_token,
        refresh_token: t.refresh_token,
        signature: createHmac('sha256', t.clientSecret).update(id + issuedAt).digest('base64'),
        scope: t.scopes.join(' '),
        // The real org's origin, as Salesforce names it: it passes the catalog's https_origin check. The
        // sandbox serves that org at `{origin}/sandbox-org.my.salesforce.com` (the printed definition's api_base_url).
        instance_url: `https://${instanceHost}`,
        id,
        token_type: 'Bearer',
        issued_at: issuedAt,
      };
    },
    error: (code) =>
      code === 'invalid_grant' ? { status: 400, body: { error: 'invalid_grant', error_description: 'expired access/refresh token' } } : rfcTokenError(code),
  },
  revocation: { url: 'https://login.salesforce.com/services/oauth2/revoke', method: 'POST', body: 'form', tokenFields: ['token'], auth: 'none', ...rfc7009, fail: (r) => (r === 'unknown_token' ? { status: 400, body: { error: 'unsupported_token_type', error_description: 'this token type is not supported' } } : rfc7009.fail(r)) },
  introspection: { url: 'https://login.salesforce.com/services/oauth2/introspect', body: 'form', auth: 'client' },
  api: {
    definitionBase: `https://${instanceHost}/services/data/v62.0`,
    bases: [`https://${instanceHost}/services/data/v62.0`],
    routes: [
      { method: 'GET', path: '/sobjects', scopes: ['api', 'full'], body: { encoding: 'UTF-8', sobjects: [] } },
      { method: 'GET', path: '/query', scopes: ['api', 'full'], body: { totalSize: 0, done: true, records: [] } },
      { method: 'GET', path: '/chatter/users/me', scopes: ['chatter_api', 'api', 'full'], body: { id: userId } },
    ],
    refuse: () => ({ status: 401, body: [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }], headers: { 'www-authenticate': 'Token' } }),
    missingScope: () => ({ status: 403, body: [{ message: 'This session is not valid for use with the REST API', errorCode: 'API_DISABLED_FOR_ORG' }] }),
  },
  notModelled: [
    'the test.salesforce.com endpoints answer as login.salesforce.com (same grants); My Domain login hosts',
    'instance_url names the real org origin (https://sandbox-org.my.salesforce.com), which the sandbox serves under its own origin: the printed definition sets api_base_url to that sandbox path instead of {instance_url}',
    'per-org session timeouts and refresh-token policies (idle/absolute expiry), userinfo, id_token',
  ],
};
