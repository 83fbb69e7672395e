import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { claimsOf, connectWithOwnOAuth, LoopbackOAuthClient, startScene, runSession, type Scene } from './sdk-oauth-harness.ts';

// Issue 10, end to end with the official MCP SDK client's OWN OAuth: its OAuthClientProvider and
// the StreamableHTTPClientTransport's authProvider do 401 → RFC 9728 metadata → RFC 8414 metadata →
// RFC 7591 registration → authorization URL with PKCE S256 and `resource` → (the owner approves,
// played here over HTTP) → code exchange → tool calls on /mcp/up, in front of an SDK MCP server
// whose own IdP is the sandbox with 5 s rotating tokens. Warrant's access tokens live 8 s here, so
// the client also refreshes its own Warrant token (and saves the rotated refresh token) by itself.

const UPSTREAM_TTL = 5;
const DOWNSTREAM_TTL = 8;

describe('the SDK MCP client authenticates by itself against Warrant and calls tools through the gateway', () => {
  let scene: Scene;
  let oauthClient: LoopbackOAuthClient;
  let client: Client | undefined;

  before(async () => {
    scene = await startScene({ downstreamAccessTokenTtl: DOWNSTREAM_TTL, upstreamAccessTokenTtl: UPSTREAM_TTL });
    oauthClient = await LoopbackOAuthClient.start();
  });
  after(async () => {
    await client?.close().catch(() => undefined);
    await oauthClient?.close();
    await scene?.close();
  });

  test('discovery, dynamic registration (once), PKCE S256 with the resource, the owner’s consent, the code exchange', async () => {
    ({ client } = await connectWithOwnOAuth(scene, oauthClient));
    const c = oauthClient.counters;
    assert.equal(c.registrations, 1, 'one RFC 7591 registration');
    assert.equal(c.authorizationRedirects, 1, 'one authorization');
    assert.equal(c.codeExchanges, 1);
    const registered = oauthClient.clientInformation()!;
    assert.ok(registered.client_id);

    // The authorization request the SDK built from Warrant's metadata.
    const url = oauthClient.authorizationUrls[0]!;
    assert.equal(url.origin + url.pathname, `${scene.base}/oauth2/authorize`);
    assert.equal(url.searchParams.get('client_id'), registered.client_id);
    assert.equal(url.searchParams.get('redirect_uri'), oauthClient.redirectUrl);
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.match(url.searchParams.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.equal(url.searchParams.get('resource'), scene.endpoint, 'RFC 8707 resource = the gateway endpoint');
    assert.equal(url.searchParams.get('scope'), 'mcp', "the scope of the 401's WWW-Authenticate");
    assert.equal(oauthClient.lastIss, scene.base, 'RFC 9207 iss on the authorization response');

    // What the client stored is Warrant's token for exactly this endpoint, never an upstream one.
    const tokens = oauthClient.tokens()!;
    assert.ok(tokens.refresh_token, 'a refresh token without offline_access');
    const { header, payload } = claimsOf(tokens.access_token);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(payload.iss, scene.base);
    assert.equal(payload.aud, scene.endpoint);
    assert.equal(payload.client_id, registered.client_id);
    assert.match(String(payload.scope), /\bmcp\b/);
    assert.ok(Number(payload.exp) - Number(payload.iat) <= DOWNSTREAM_TTL);
    assert.ok(!scene.upstream.seenTokens.has(tokens.access_token));

    const tools = await client.listTools();
    assert.deepEqual(tools.tools.map((t) => t.name), ['echo', 'add']);
  });

  test('~20 s of tool calls: no auth failure, no re-authentication, about one upstream refresh per expiry, the client refreshes its own token', async () => {
    assert.ok(client, 'connected by the previous test');
    const first = oauthClient.tokens()!;
    const r = await runSession(scene, oauthClient, client, { durationMs: 20_000, intervalMs: 200, upstreamTtlSeconds: UPSTREAM_TTL, downstreamTtlSeconds: DOWNSTREAM_TTL });
    const detail = JSON.stringify(r);
    assert.ok(r.toolCalls >= 50, detail);
    assert.equal(r.authFailures, 0, detail);
    assert.equal(r.clientReauthentications, 0, detail);
    assert.equal(oauthClient.counters.registrations, 1, 'still the one registration');
    assert.equal(oauthClient.counters.codeExchanges, 1, 'no second authorization code');

    // Upstream: 20 s of 5 s tokens are four expiries, refreshed about once each.
    assert.equal(r.upstreamRefreshFailures, 0, detail);
    assert.equal(r.upstreamReuseDetected, 0, detail);
    assert.ok(r.upstreamRefreshes >= 3 && r.upstreamRefreshes <= 8, detail);

    // Downstream: Warrant's 8 s tokens expired twice; each 401 was answered by one refresh of the
    // client's own refresh token (rotated, saved), and the tool call went through.
    assert.equal(r.downstreamRefreshFailures, 0, detail);
    assert.ok(r.downstreamRefreshes >= 2 && r.downstreamRefreshes <= r.downstreamExpiries + 1, detail);
    assert.ok(r.endpoint401 <= r.downstreamRefreshes, detail);
    const last = oauthClient.tokens()!;
    assert.notEqual(last.access_token, first.access_token);
    assert.notEqual(last.refresh_token, first.refresh_token, 'the rotated refresh token was saved');
    const { payload } = claimsOf(last.access_token);
    assert.equal(payload.aud, scene.endpoint);
    assert.equal(payload.client_id, oauthClient.clientInformation()!.client_id);
    assert.ok(!scene.upstream.seenTokens.has(first.access_token) && !scene.upstream.seenTokens.has(last.access_token), "the client's tokens never go upstream");
  });
});
