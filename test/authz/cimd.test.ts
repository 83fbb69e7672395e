import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { claimsOf, connectWithOwnOAuth, LoopbackOAuthClient, OWNER, startScene, type Scene } from '../mcp/sdk-oauth-harness.ts';
import { authorizationUrl, authorizeAsOwner, discover, startAuthzWarrant, type AuthzWarrant, type Browser } from './helpers.ts';

// Client ID Metadata Documents (draft-02, the MCP spec's first way to identify a client): the
// official SDK client, given a clientMetadataUrl, uses that https URL as its client_id with no
// registration; Warrant fetches the document there through its SSRF guard (allowed networks,
// no redirect, 5 KB, a deadline), caches it, and makes the client an agent of the owner who
// consents, once. The documents are served over TLS on loopback with the test certificate in
// test/fixtures/tls (trusted through NODE_EXTRA_CA_CERTS, which `npm test` sets).

const CERT = resolve('test/fixtures/tls/localhost.crt');
const trusted = process.env.NODE_EXTRA_CA_CERTS !== undefined && resolve(process.env.NODE_EXTRA_CA_CERTS) === CERT;
const skip = trusted ? false : 'needs NODE_EXTRA_CA_CERTS=test/fixtures/tls/localhost.crt (npm test sets it; prefix a single-file run with it)';

/** An https server on loopback serving metadata documents by path, counting requests and connections. */
async function startDocuments(docs: Record<string, (res: import('node:http').ServerResponse) => void>) {
  const hits = new Map<string, number>();
  let connections = 0;
  const server: Server = createServer({ key: readFileSync('test/fixtures/tls/localhost.key'), cert: readFileSync(CERT) }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const serve = docs[path];
    if (serve) serve(res);
    else res.writeHead(404).end();
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    hits: (path: string) => hits.get(path) ?? 0,
    connections: () => connections,
    close: () => new Promise<void>((r) => (server.close(() => r()), server.closeAllConnections())),
  };
}

const json = (body: unknown, headers: Record<string, string> = {}) => (res: import('node:http').ServerResponse) =>
  void res.writeHead(200, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

describe('Client ID Metadata Documents on Warrant’s authorization server', { skip }, () => {
  let scene: Scene;
  let oauthClient: LoopbackOAuthClient;
  let docs: Awaited<ReturnType<typeof startDocuments>>;
  let client: Client | undefined;
  let clientId: string;
  let ownersBrowser: Browser;
  const slow: NodeJS.Timeout[] = [];

  before(async () => {
    scene = await startScene({ downstreamAccessTokenTtl: 600 });
    oauthClient = await LoopbackOAuthClient.start();
    // The client's publisher writes the document; like the SDK, it names no application_type.
    const { application_type: _none, ...metadata } = oauthClient.clientMetadata as unknown as Record<string, unknown>;
    const at = (path: string) => `${docs.base}${path}`;
    const valid = (path: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) => json({ ...metadata, client_id: at(path), ...extra }, headers);
    docs = await startDocuments({
      // A real document says how long it may be cached.
      '/client.json': (res) => valid('/client.json', {}, { 'cache-control': 'max-age=600' })(res),
      '/loopback.json': (res) => valid('/loopback.json')(res),
      '/wrong-id.json': (res) => json({ ...metadata, client_id: at('/client.json') })(res),
      '/big.json': (res) => valid('/big.json', { client_name: `big ${'x'.repeat(6 * 1024)}` })(res),
      '/slow.json': (res) => void slow.push(setTimeout(() => valid('/slow.json')(res), 10_000)),
      '/redirect.json': (res) => void res.writeHead(302, { location: at('/target.json') }).end(),
      '/target.json': (res) => valid('/redirect.json')(res),
      '/owner.json': (res) => valid('/owner.json', { warrant_owner: OWNER })(res),
      '/headless.json': (res) => valid('/headless.json', { grant_types: ['client_credentials'], response_types: [], redirect_uris: [] })(res),
      '/plain-http.json': (res) => valid('/plain-http.json', { redirect_uris: ['http://client.example.com/callback'] })(res),
      '/no-auth-method.json': (res) => valid('/no-auth-method.json', { token_endpoint_auth_method: undefined })(res),
    });
    clientId = at('/client.json');
    oauthClient.clientMetadataUrl = clientId;
  });
  after(async () => {
    for (const t of slow) clearTimeout(t);
    await client?.close().catch(() => undefined);
    await oauthClient?.close();
    await docs?.close();
    await scene?.close();
  });

  /** An authorization request naming `id` as client_id, as a browser would send it; its answer. */
  async function authorize(base: string, id: string): Promise<{ status: number; text: string; ms: number }> {
    const as = await discover(base, base);
    const url = await authorizationUrl(as, { client_id: id }, { redirectUri: oauthClient.redirectUrl, resource: scene.endpoint, verifier: 'v'.repeat(43), state: 's' });
    const started = Date.now();
    const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(15_000) });
    return { status: res.status, text: await res.text(), ms: Date.now() - started };
  }

  test('the metadata advertises client_id_metadata_document_supported (RFC 8414)', async () => {
    const as = await discover(scene.base, scene.base);
    assert.equal(as.client_id_metadata_document_supported, true);
  });

  test('the SDK client: discovery → its document URL as client_id (no registration) → PKCE + resource → consent → tool calls on /mcp/up', async () => {
    const connected = await connectWithOwnOAuth(scene, oauthClient);
    client = connected.client;
    ownersBrowser = connected.browser;
    const c = oauthClient.counters;
    assert.equal(c.registrations, 0, 'no RFC 7591 registration: the URL is the client_id');
    assert.equal(c.codeExchanges, 1);
    assert.equal(oauthClient.clientInformation()?.client_id, clientId);
    assert.equal(docs.hits('/client.json'), 1, 'fetched once');

    const url = oauthClient.authorizationUrls[0]!;
    assert.equal(url.searchParams.get('client_id'), clientId);
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(url.searchParams.get('resource'), scene.endpoint);

    // The login and consent pages name the client and the host that published it; consent, where the code goes.
    const host = new URL(clientId).host;
    assert.ok(connected.pages[0]!.includes(`SDK OAuth e2e client (${host})`), 'the login page names the publisher too');
    const consent = connected.pages.find((p) => p.includes('Allow access?'));
    assert.ok(consent, 'the owner was asked');
    assert.match(consent, /SDK OAuth e2e client/);
    assert.ok(consent.includes(`Published by</dt><dd><b>${host}</b>`), consent);
    assert.ok(consent.includes(oauthClient.redirectUrl), 'the redirect URI is shown');

    const { payload } = claimsOf(oauthClient.tokens()!.access_token);
    assert.equal(payload.client_id, clientId);
    assert.equal(payload.aud, scene.endpoint);
    const r = (await client.callTool({ name: 'echo', arguments: { text: 'cimd' } })) as CallToolResult;
    assert.equal(r.isError, undefined);
    assert.deepEqual(r.content, [{ type: 'text', text: 'echo: cimd' }]);

    // The client is an agent of the owner, listed like any other, named with its publisher.
    const res = await fetch(`${scene.base}/v1/agents?owner=${encodeURIComponent(OWNER)}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const { agents } = (await res.json()) as { agents: { id: string; name: string; status: string }[] };
    const mine = agents.filter((a) => a.name === `oauth client: SDK OAuth e2e client (${host})`);
    assert.equal(mine.length, 1, JSON.stringify(agents));
    assert.equal(mine[0]!.status, 'active');
    assert.equal(payload.agent_id, mine[0]!.id);
  });

  test('a second authorization in the owner’s browser: no page at all (consent was once), and the cached document is not fetched again', async () => {
    assert.ok(client, 'connected by the previous test');
    const as = await discover(scene.base, scene.base);
    const url = await authorizationUrl(as, { client_id: clientId }, { redirectUri: oauthClient.redirectUrl, resource: scene.endpoint, verifier: 'w'.repeat(43), state: 't' });
    const { callback, pages } = await authorizeAsOwner(scene.base, url, OWNER, { browser: ownersBrowser });
    assert.equal(callback.origin + callback.pathname, oauthClient.redirectUrl);
    assert.ok(callback.searchParams.get('code'), callback.href);
    assert.deepEqual(pages, [], 'neither login nor consent');
    assert.equal(docs.hits('/client.json'), 1, 'served from the cache within the clamped max-age');
  });

  test('refused: a document whose client_id is not its own URL, one over 5 KB, one too slow, a redirect', async () => {
    const wrong = await authorize(scene.base, `${docs.base}/wrong-id.json`);
    assert.equal(wrong.status, 400);
    assert.match(wrong.text, /invalid_client_metadata/);
    assert.match(wrong.text, /client_id does not match/);

    const big = await authorize(scene.base, `${docs.base}/big.json`);
    assert.equal(big.status, 400);
    assert.match(big.text, /invalid_client/);
    assert.equal(docs.hits('/big.json'), 1, 'one fetch, though oidc-provider looks the client up twice on a refusal');
    // Asked again at once: refused from memory, not fetched again.
    assert.equal((await authorize(scene.base, `${docs.base}/big.json`)).status, 400);
    assert.equal(docs.hits('/big.json'), 1);

    // The server holds its answer 10 s; Warrant gives up at its deadline (2 s).
    const late = await authorize(scene.base, `${docs.base}/slow.json`);
    assert.equal(late.status, 400);
    assert.match(late.text, /invalid_client/);
    assert.ok(late.ms < 5_000, `answered in ${late.ms} ms`);
    assert.equal(docs.hits('/slow.json'), 1);
    assert.match(scene.env.logs.text(), /slow\.json","reason":"TimeoutError"/);

    const moved = await authorize(scene.base, `${docs.base}/redirect.json`);
    assert.equal(moved.status, 400);
    assert.match(moved.text, /invalid_client/);
    assert.equal(docs.hits('/redirect.json'), 1);
    assert.equal(docs.hits('/target.json'), 0, 'the redirect is not followed');
    assert.match(scene.env.logs.text(), /"status":302.*redirects are not followed/);
  });

  test("refused: documents that break Warrant's rules (an owner of their own, no code grant, plain http redirect URIs, no auth method), an overlong URL", async () => {
    const long = await authorize(scene.base, `${docs.base}/${'a'.repeat(2000)}.json`);
    assert.equal(long.status, 400);
    assert.match(long.text, /at most 2000 characters/);
    for (const [path, why] of [
      ['/owner.json', /must not set warrant_owner/],
      ['/headless.json', /grant_types must include authorization_code/],
      ['/plain-http.json', /must use https/],
      // RFC 7591's default (client_secret_basic) needs a secret a document cannot hold.
      ['/no-auth-method.json', /invalid_client_metadata/],
    ] as const) {
      const r = await authorize(scene.base, `${docs.base}${path}`);
      assert.equal(r.status, 400, path);
      assert.match(r.text, why, `${path}: ${r.text.slice(0, 400)}`);
    }
  });

  describe('a Warrant that does not allow loopback (no WARRANT_MCP_ALLOWED_NETWORKS)', () => {
    let w: AuthzWarrant;
    before(async () => {
      w = await startAuthzWarrant('sqlite');
    });
    after(async () => {
      await w?.cleanup();
    });

    test('refuses a document on a loopback address: no connection is even made (SSRF guard on the socket)', async () => {
      const before = docs.connections();
      const r = await authorize(w.base, `${docs.base}/loopback.json`);
      assert.equal(r.status, 400);
      assert.match(r.text, /invalid_client/);
      assert.equal(docs.connections(), before, 'no socket reached the document server');
      assert.equal(docs.hits('/loopback.json'), 0);
      assert.match(w.logs.text(), /loopback\.json","reason":"EWARRANT_ADDRESS_REFUSED"/);
    });
  });
});
