import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { OAuthCallError, type OAuthClient } from '../../src/oauth/index.ts';
import { grantedScopes, providerSchema, type Provider } from '../../src/providers/index.ts';
import { createClientResolver } from '../../src/tokens/index.ts';
import { basicCredentials, startRecordingServer, type RecordingServer } from './recording-server.ts';

// Token endpoints that do not answer as RFC 6749 §5.1 says (issue 9): Slack's oauth.v2.access
// (bot token at the top level with token_type "bot" and comma-separated scopes; the user token
// nested in `authed_user`; failures as 200 {"ok": false}), scopes in another member, another
// authorize parameter for scopes (`user_scope`), and static headers on every token request
// (Notion-Version). Each is read by Warrant's real client from a real server on loopback.

const BOT = 'xoxb-bot-secret-1111';
const USER = 'xoxp-user-secret-2222';
const USER_RT = 'xoxe-1-user-refresh-3333';
const VERIFIER = 'v'.repeat(43);

let idp: RecordingServer;
before(async () => {
  idp = await startRecordingServer();
});
after(() => idp.close());

function clientFor(definition: Record<string, unknown>): { client: OAuthClient; provider: Provider } {
  const provider = providerSchema.parse({
    auth: 'oauth2',
    client_id: 'slack-client',
    client_secret: 'slack-secret',
    environments: {
      production: {
        authorization_url: `${idp.url}/oauth/v2/authorize`,
        token_url: `${idp.url}/api/oauth.v2.access`,
        revocation_url: `${idp.url}/api/auth.revoke`,
        api_base_url: `${idp.url}/api`,
      },
    },
    ...definition,
  });
  return { provider, client: createClientResolver({ timeoutMs: 5000, env: {} })(provider, 'production', {}) };
}

const slackBot = { id: 'slack', scope_separator: ',', token_endpoint: { errors_with_200: true } };
const slackUser = { ...slackBot, id: 'slack-user', scope_param: 'user_scope', token_response: { path: 'authed_user' } };

// oauth.v2.access as documented (docs.slack.dev/reference/methods/oauth.v2.access), bot and user scopes granted.
const slackAnswer = {
  ok: true,
  access_token: BOT,
  token_type: 'bot',
  scope: 'chat:write,channels:read',
  bot_user_id: 'U0BOT',
  app_id: 'A0APP',
  team: { name: 'Acme', id: 'T0TEAM' },
  enterprise: null,
  authed_user: { id: 'U0USER', scope: 'search:read,users:read', access_token: USER, token_type: 'user', refresh_token: USER_RT, expires_in: 43200 },
  is_enterprise_install: false,
};

const exchange = (client: OAuthClient) =>
  client.exchangeCode(new URLSearchParams({ code: 'code-1', state: 'state-1' }), { redirectUri: 'https://warrant.example/oauth/callback', codeVerifier: VERIFIER, expectedState: 'state-1' });

async function refused(p: Promise<unknown>): Promise<OAuthCallError> {
  const err = await p.then(
    (v) => assert.fail(`accepted: ${inspect(v)}`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof OAuthCallError, inspect(err));
  const everything = `${err.message}\n${inspect(err, { depth: 10, showHidden: true })}`;
  for (const secret of [BOT, USER, USER_RT, 'slack-secret']) assert.ok(!everything.includes(secret), everything);
  return err;
}

describe('Slack oauth.v2.access', () => {
  test('the bot token: token_type "bot" kept, comma-separated scopes granted one by one, the rest in extra', async () => {
    const { client, provider } = clientFor(slackBot);
    idp.on('/api/oauth.v2.access', { status: 200, body: slackAnswer });
    const tokens = await exchange(client);
    assert.equal(tokens.access_token, BOT);
    assert.equal(tokens.token_type, 'bot');
    assert.equal(tokens.refresh_token, undefined);
    assert.deepEqual(grantedScopes(provider, tokens.scope), ['chat:write', 'channels:read']);
    assert.deepEqual(tokens.extra.team, { name: 'Acme', id: 'T0TEAM' });
    assert.equal(tokens.extra.bot_user_id, 'U0BOT');
    const sent = idp.at('/api/oauth.v2.access').at(-1)!;
    // RFC 6749 §2.3.1: id and secret form-encoded inside Basic, as oauth4webapi sends them.
    assert.deepEqual(basicCredentials(sent.headers.authorization), ['slack-client', 'slack-secret']);
    assert.equal(new URLSearchParams(sent.body).get('code'), 'code-1');
  });

  test('the user token, nested in authed_user: read from there; the bot token kept out of the connection', async () => {
    const { client, provider } = clientFor(slackUser);
    idp.on('/api/oauth.v2.access', { status: 200, body: slackAnswer });
    const tokens = await exchange(client);
    assert.equal(tokens.access_token, USER);
    assert.equal(tokens.refresh_token, USER_RT);
    assert.equal(tokens.expires_in, 43200);
    assert.equal(tokens.token_type, 'user');
    assert.deepEqual(grantedScopes(provider, tokens.scope), ['search:read', 'users:read']);
    assert.deepEqual(tokens.extra.team, { name: 'Acme', id: 'T0TEAM' });
    assert.equal(tokens.extra.app_id, 'A0APP');
    assert.equal(tokens.extra.ok, true);
    // The nested member stays for what it says (whose token it is), without its secrets.
    assert.deepEqual(tokens.extra.authed_user, { id: 'U0USER', scope: 'search:read,users:read', token_type: 'user', expires_in: 43200 });
    for (const secret of [BOT, USER, USER_RT]) assert.ok(!JSON.stringify(tokens.extra).includes(secret), `a token in extra: ${JSON.stringify(tokens.extra)}`);
  });

  test('a user token refresh (flat answer, as Slack sends it) is read at the top level', async () => {
    const { client } = clientFor(slackUser);
    idp.on('/api/oauth.v2.access', {
      status: 200,
      body: { ok: true, app_id: 'A0APP', access_token: 'xoxe.xoxp-new', expires_in: 43200, refresh_token: 'xoxe-1-new', token_type: 'user', scope: 'search:read,users:read' },
    });
    const tokens = await client.refresh(USER_RT);
    assert.equal(tokens.access_token, 'xoxe.xoxp-new');
    assert.equal(tokens.refresh_token, 'xoxe-1-new');
    assert.equal(tokens.scope, 'search:read,users:read');
    const sent = new URLSearchParams(idp.at('/api/oauth.v2.access').at(-1)!.body);
    assert.equal(sent.get('grant_type'), 'refresh_token');
    assert.equal(sent.get('refresh_token'), USER_RT);
  });

  test('a code exchange answer without a user token is refused, never read as the bot token', async () => {
    const { client } = clientFor(slackUser);
    const { authed_user: _, ...botOnly } = slackAnswer;
    for (const body of [{ ...slackAnswer, authed_user: { id: 'U0USER' } }, botOnly]) {
      idp.on('/api/oauth.v2.access', { status: 200, body });
      const err = await refused(exchange(client));
      assert.equal(err.error, 'invalid_response');
      assert.match(err.message, /access_token/);
    }
  });

  test('200 {"ok": false, "error": …} is the failure it names: invalid_code, a dead refresh token (terminal), an outage (transient)', async () => {
    const { client } = clientFor(slackUser);
    idp.on('/api/oauth.v2.access', { status: 200, body: { ok: false, error: 'invalid_code' } });
    const code = await refused(exchange(client));
    assert.equal(code.error, 'invalid_code');
    idp.on('/api/oauth.v2.access', { status: 200, body: { ok: false, error: 'invalid_refresh_token' } });
    const dead = await refused(client.refresh(USER_RT));
    assert.deepEqual([dead.kind, dead.error], ['terminal', 'invalid_refresh_token']);
    idp.on('/api/oauth.v2.access', { status: 200, body: { ok: false, error: 'ratelimited' } });
    const busy = await refused(client.refresh(USER_RT));
    assert.deepEqual([busy.kind, busy.error], ['transient', 'ratelimited']);
  });
});

describe('token_response.scope_field, scope_param', () => {
  test('scopes read from the member scope_field names, at the top level and in a nested set', async () => {
    const flat = clientFor({ id: 'granted-flat', token_response: { scope_field: 'granted_scopes' } }).client;
    idp.on('/api/oauth.v2.access', { status: 200, body: { access_token: 'at-1', token_type: 'Bearer', scope: 'ignored', granted_scopes: 'a b' } });
    assert.equal((await flat.refresh('rt')).scope, 'a b');
    const nested = clientFor({ id: 'granted-nested', token_response: { path: 'grant.tokens', scope_field: 'granted' } }).client;
    idp.on('/api/oauth.v2.access', { status: 200, body: { tenant: 't1', grant: { tokens: { access_token: 'at-2', granted: ['x', 'y'] }, kind: 'user' } } });
    const tokens = await nested.refresh('rt');
    assert.equal(tokens.access_token, 'at-2');
    assert.equal(tokens.scope, 'x y');
    assert.equal(tokens.extra.tenant, 't1');
    assert.deepEqual(tokens.extra.grant, { tokens: { granted: ['x', 'y'] }, kind: 'user' });
  });

  test('the authorization request carries the scopes in scope_param (Slack user tokens: user_scope), not in scope', () => {
    const { client } = clientFor(slackUser);
    const url = new URL(client.authorizationUrl({ redirectUri: 'https://warrant.example/cb', scopes: ['search:read', 'users:read'], state: 's' }));
    assert.equal(url.searchParams.get('user_scope'), 'search:read,users:read');
    assert.equal(url.searchParams.has('scope'), false);
    const bot = new URL(clientFor(slackBot).client.authorizationUrl({ redirectUri: 'https://warrant.example/cb', scopes: ['chat:write'], state: 's' }));
    assert.equal(bot.searchParams.get('scope'), 'chat:write');
  });

  test('idp_scopes false (Notion): the scopes are Warrant\'s own, never sent; a scope in the answer is not read', () => {
    const { client, provider } = clientFor({ id: 'notion-like', idp_scopes: false, scopes: { read_content: [{ method: 'GET', path: '/pages/**' }] } });
    const url = new URL(client.authorizationUrl({ redirectUri: 'https://warrant.example/cb', scopes: ['read_content'], state: 's' }));
    assert.equal(url.searchParams.has('scope'), false);
    assert.equal(grantedScopes(provider, 'something else', ['read_content']), undefined, 'undefined: the requested scopes stand');
  });
});

describe('token_endpoint.headers', () => {
  test('sent on every token request (code exchange, refresh); not on revocation or introspection', async () => {
    const { client } = clientFor({
      id: 'notion-like',
      token_endpoint: { body: 'json', headers: { 'Notion-Version': '2026-03-11', 'X-Extra': 'on' } },
      environments: {
        production: {
          authorization_url: `${idp.url}/v1/oauth/authorize`,
          token_url: `${idp.url}/v1/oauth/token`,
          revocation_url: `${idp.url}/v1/oauth/rfc-revoke`,
          introspection_url: `${idp.url}/v1/oauth/introspect`,
          api_base_url: `${idp.url}/v1`,
        },
      },
    });
    idp.on('/v1/oauth/token', { status: 200, body: { access_token: 'ntn-at', token_type: 'bearer', refresh_token: 'ntn-rt', workspace_id: 'w1' } });
    idp.on('/v1/oauth/rfc-revoke', { status: 200 });
    idp.on('/v1/oauth/introspect', { status: 200, body: { active: false } });
    await exchange(client);
    await client.refresh('ntn-rt');
    await client.revoke('ntn-rt', 'refresh_token');
    await client.introspect('ntn-at', 'access_token');
    const [code, refresh] = idp.at('/v1/oauth/token');
    for (const sent of [code!, refresh!]) {
      assert.equal(sent.headers['notion-version'], '2026-03-11');
      assert.equal(sent.headers['x-extra'], 'on');
      assert.equal(sent.headers['content-type'], 'application/json');
    }
    assert.equal(JSON.parse(refresh!.body).refresh_token, 'ntn-rt');
    for (const path of ['/v1/oauth/rfc-revoke', '/v1/oauth/introspect']) {
      const sent = idp.at(path).at(-1)!;
      assert.equal(sent.headers['notion-version'], undefined, path);
      assert.equal(sent.headers['x-extra'], undefined, path);
    }
  });
});

describe('refresh_url', () => {
  test('refreshes go to the environment refresh_url (Figma), code exchanges to token_url', async () => {
    const provider = providerSchema.parse({
      id: 'figma-like',
      auth: 'oauth2',
      client_id: 'figma-client',
      client_secret: 'figma-secret',
      environments: {
        production: {
          authorization_url: `${idp.url}/oauth`,
          token_url: `${idp.url}/v1/oauth/token`,
          refresh_url: `${idp.url}/v1/oauth/refresh`,
          api_base_url: `${idp.url}/v1`,
        },
      },
    });
    const client = createClientResolver({ timeoutMs: 5000, env: {} })(provider, 'production', {});
    idp.on('/v1/oauth/token', { status: 200, body: { access_token: 'figd-access-1', refresh_token: 'figd-refresh-1', expires_in: 7776000, token_type: 'bearer' } });
    idp.on('/v1/oauth/refresh', { status: 200, body: { access_token: 'figd-access-2', expires_in: 7776000, token_type: 'bearer' } });
    await exchange(client);
    const refreshed = await client.refresh('figd-refresh-1');
    assert.equal(refreshed.access_token, 'figd-access-2');
    const [refresh] = idp.at('/v1/oauth/refresh');
    assert.equal(new URLSearchParams(refresh!.body).get('grant_type'), 'refresh_token');
    assert.equal(idp.at('/v1/oauth/token').filter((r) => new URLSearchParams(r.body).get('grant_type') === 'refresh_token').length, 0);
  });
});
