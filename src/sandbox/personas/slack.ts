import type { Issued, Persona, TokenErrorCode } from './types.ts';

// Slack oauth.v2 (docs.slack.dev "Installing with OAuth", "Using token rotation", auth.revoke):
// 200 for everything with `ok`, bot token type "bot", comma-separated scopes, user tokens nested
// in `authed_user`, 12-hour tokens with rotation on.

const team = { id: 'T0SANDBOX', name: 'Sandbox Workspace' };
const tokenErrors: Record<TokenErrorCode, string> = {
  invalid_request: 'invalid_arguments',
  invalid_client: 'invalid_client_id',
  invalid_grant: 'invalid_code',
  unsupported_grant_type: 'invalid_grant_type',
  redirect_uri_mismatch: 'bad_redirect_uri',
  invalid_code_verifier: 'invalid_code',
};

function tokenSet(t: Issued) {
  return { access_token: t.access_token, token_type: t.isSecondary ? 'user' : 'bot', scope: t.scopes.join(','), expires_in: t.expires_in, refresh_token: t.refresh_token };
}

export const slack: Persona = {
  id: 'slack',
  name: 'Slack',
  catalog: ['slack'],
  hosts: ['slack.com'],
  tenantKind: 'uuid',
  authorize: { url: 'https://slack.com/oauth/v2/authorize', separator: ',', secondaryScopeParam: 'user_scope' },
  token: {
    url: 'https://slack.com/api/oauth.v2.access',
    body: 'form',
    clientAuth: ['basic', 'post'],
    accessTtl: 43200,
    sendsExpiresIn: true,
    refreshToken: 'always',
    rotation: 'always',
    prefix: { access: 'xoxb-', refresh: 'xoxe-1-', secondaryAccess: 'xoxp-', secondaryRefresh: 'xoxe-1-' },
    response(t) {
      const common = { ok: true, app_id: 'A0SANDBOX', team, enterprise: null, is_enterprise_install: false };
      if (t.grantType === 'refresh_token') return { ...common, ...tokenSet(t), ...(t.isSecondary ? { user_id: 'U0SANDBOX' } : { bot_user_id: 'U0SANDBOXBOT' }) };
      const user = t.secondary ? { id: 'U0SANDBOX', ...tokenSet(t.secondary) } : { id: 'U0SANDBOX' };
      // A user-scope-only install has no bot token: the token set is only in authed_user.
      const bot = t.scopes.length > 0 ? { ...tokenSet(t), bot_user_id: 'U0SANDBOXBOT' } : {};
      return { ...common, ...bot, authed_user: user };
    },
    error: (code, grantType) => ({
      status: 200,
      body: { ok: false, error: code === 'invalid_grant' && grantType === 'refresh_token' ? 'invalid_refresh_token' : tokenErrors[code] },
    }),
  },
  revocation: {
    url: 'https://slack.com/api/auth.revoke',
    method: 'POST',
    body: 'none',
    tokenFields: ['token'],
    auth: 'bearer',
    ok: { status: 200, body: { ok: true, revoked: true } },
    fail: (reason) => ({ status: 200, body: { ok: false, error: reason === 'unknown_token' ? 'invalid_auth' : 'not_authed' } }),
  },
  api: {
    bases: ['https://slack.com/api'],
    routes: [
      { method: ['GET', 'POST'], path: '/auth.test', scopes: [], body: { ok: true, url: 'https://sandbox.slack.com/', team: team.name, team_id: team.id, user: 'sandbox', user_id: 'U0SANDBOX' } },
      { method: 'POST', path: '/chat.postMessage', scopes: ['chat:write'], body: { ok: true, channel: 'C0SANDBOX', ts: '1700000000.000100', message: { type: 'message', text: 'hello' } } },
      { method: ['GET', 'POST'], path: '/conversations.list', scopes: ['channels:read', 'groups:read', 'im:read', 'mpim:read'], body: { ok: true, channels: [{ id: 'C0SANDBOX', name: 'general', is_channel: true }], response_metadata: { next_cursor: '' } } },
      { method: ['GET', 'POST'], path: '/conversations.history', scopes: ['channels:history', 'groups:history', 'im:history', 'mpim:history'], body: { ok: true, messages: [], has_more: false } },
      { method: ['GET', 'POST'], path: '/users.list', scopes: ['users:read'], body: { ok: true, members: [{ id: 'U0SANDBOX', name: 'sandbox' }] } },
    ],
    refuse: (reason) => ({
      status: 200,
      body: { ok: false, error: { missing: 'not_authed', expired: 'token_expired', invalid: 'invalid_auth', revoked: 'token_revoked' }[reason] },
    }),
    missingScope: (needed, granted) => ({ status: 200, body: { ok: false, error: 'missing_scope', needed: needed[0], provided: granted.join(',') } }),
    headers: (granted) => ({ 'x-oauth-scopes': granted.join(',') }),
  },
  notModelled: [
    'apps with token rotation off (tokens that never expire, no refresh token)',
    'the user token set is refreshed with its own refresh token and answered top-level (token_type "user"); unverified against Slack',
    'enterprise grid installs, incoming webhooks, team/enterprise ids other than fixed ones',
    'rate limits (429 with Retry-After) except through the sandbox api fault',
  ],
};
