import type { Persona } from './types.ts';

// Notion public integrations (developers.notion.com authorization, create-a-token, refresh-a-token,
// revoke-token): JSON token requests with HTTP Basic, Notion-Version on every call, a workspace
// and bot in the answer, no OAuth scopes, errors as {"object":"error"}.

const notionError = (status: number, code: string, message: string) => ({ status, body: { object: 'error', status, code, message, request_id: '00000000-0000-4000-a000-000000000003' } });

export const notion: Persona = {
  id: 'notion',
  name: 'Notion',
  catalog: ['notion'],
  hosts: ['api.notion.com'],
  tenantKind: 'uuid',
  requiredHeaders: ['Notion-Version'],
  missingHeader: () => notionError(400, 'missing_version', 'Notion-Version header failed validation: Notion-Version header should be defined.'),
  // The integration's capabilities (set in its settings, not at consent); the sandbox integration has all of them.
  authorize: {
    url: 'https://api.notion.com/v1/oauth/authorize',
    separator: ' ',
    capabilities: ['read_content', 'update_content', 'insert_content', 'read_comments', 'insert_comments', 'read_user'],
  },
  token: {
    url: 'https://api.notion.com/v1/oauth/token',
    body: 'json',
    clientAuth: ['basic'],
    sendsExpiresIn: false,
    refreshToken: 'always',
    rotation: 'always',
    prefix: { access: 'ntn_', refresh: 'nrt_' },
    response: (t) => ({
      access_token: t.access_token,
      token_type: 'bearer',
      refresh_token: t.refresh_token,
      bot_id: '00000000-0000-4000-a000-000000000004',
      workspace_id: t.tenantId,
      workspace_name: 'Sandbox Workspace',
      workspace_icon: null,
      owner: { type: 'user', user: { object: 'user', id: '00000000-0000-4000-a000-000000000005' } },
      duplicated_template_id: null,
      request_id: '00000000-0000-4000-a000-000000000006',
    }),
    error: (code) => ({ status: code === 'invalid_client' ? 401 : 400, body: { error: code === 'invalid_code_verifier' || code === 'redirect_uri_mismatch' ? 'invalid_grant' : code, error_description: 'The sandbox refused the request.' } }),
  },
  revocation: {
    url: 'https://api.notion.com/v1/oauth/revoke',
    method: 'POST',
    body: 'json',
    tokenFields: ['token'],
    auth: 'basic',
    ok: { status: 200, body: {} },
    fail: (reason) => (reason === 'bad_client' ? notionError(401, 'unauthorized', 'Invalid client.') : notionError(400, 'validation_error', 'The token is invalid or already revoked.')),
  },
  introspection: { url: 'https://api.notion.com/v1/oauth/introspect', body: 'json', auth: 'basic' },
  api: {
    bases: ['https://api.notion.com/v1'],
    routes: [
      { method: 'GET', path: '/users/me', scopes: [], body: { object: 'user', type: 'bot', bot: {} } },
      { method: 'POST', path: '/search', scopes: ['read_content'], body: { object: 'list', results: [], has_more: false } },
      { method: 'GET', path: '/pages/*', scopes: ['read_content'], body: { object: 'page', id: '00000000-0000-4000-a000-000000000007' } },
      { method: 'GET', path: '/comments', scopes: ['read_comments'], body: { object: 'list', results: [], has_more: false } },
      { method: 'POST', path: '/comments', scopes: ['insert_comments'], body: { object: 'comment', id: '00000000-0000-4000-a000-000000000008' } },
    ],
    refuse: () => notionError(401, 'unauthorized', 'API token is invalid.'),
    missingScope: () => notionError(403, 'restricted_resource', 'Insufficient permissions for this endpoint.'),
  },
  notModelled: [
    'page sharing: every page is shared with the integration; capabilities are all granted (withdraw one with the withdraw-scopes knob to see 403 restricted_resource)',
    'access-token expiry (undocumented; none unless the lifetime knob sets one)',
    'Notion-Version values: any value is accepted, only its absence is refused',
  ],
};
