import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startSandbox, sandboxDefaults, type Sandbox } from '../../src/sandbox/index.ts';
import { createClientResolver } from '../../src/tokens/index.ts';
import { OAuthCallError } from '../../src/oauth/index.ts';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';

// The SSRF guard on the IdP calls of an MCP gateway server: its token, revocation and
// introspection endpoints come from the remote server's metadata, so every call connects through
// the guard (addresses judged on the socket). On loopback: the server is registered and connected
// while 127.0.0.1 is an allowed network; then a Warrant instance on the same store, whose allowed
// networks no longer hold 127.0.0.1, must refuse the refresh before any request leaves.

const OWNER = 'alice@example.com';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
/** A refresh now although the stored access token is still good (as the scheduler asks for one). */
const refreshNow = () => ({ refreshedAtOrBefore: Date.now() + 1000, force: true });

/** Just enough of an MCP server for registration: its RFC 9728 metadata, naming the sandbox. */
async function startResource(issuer: () => string): Promise<{ url: string; close(): Promise<void> }> {
  let origin = '';
  const server: HttpServer = createServer((req, res) => {
    if ((req.url ?? '').split('?')[0] === '/.well-known/oauth-protected-resource/mcp') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ resource: `${origin}/mcp`, authorization_servers: [issuer()], scopes_supported: ['items:read'] }));
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/mcp`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

describe('IdP calls of an MCP gateway server go through the SSRF guard', () => {
  let sandbox: Sandbox;
  let resource: Awaited<ReturnType<typeof startResource>>;
  let first: LifecycleEnv;
  let second: LifecycleEnv | undefined;
  let connectionId: string;

  before(async () => {
    let sb: Sandbox | undefined;
    resource = await startResource(() => sb!.issuer);
    sandbox = sb = await startSandbox({ accessTokenTtl: 60, rotateRefreshTokens: true, resources: [resource.url] });
    first = await startLifecycle({ sharedSandbox: sandbox, env: { WARRANT_MCP_ALLOWED_NETWORKS: '127.0.0.1/32' } });
  });
  after(async () => {
    await second?.cleanup();
    await first?.warrant.close().catch(() => undefined);
    if (first) rmSync(first.env.WARRANT_DATA_DIR!, { recursive: true, force: true });
    await sandbox?.close();
    await resource?.close();
  });

  test('with the network allowed: registration, code exchange and refresh all reach the IdP', async () => {
    const res = await first.warrant.app.inject({
      method: 'POST',
      url: '/v1/mcp-servers',
      headers: admin,
      payload: { url: resource.url, name: 'up', client_id: sandboxDefaults.clientId, client_secret: sandboxDefaults.clientSecret },
    });
    assert.equal(res.statusCode, 201, res.body);
    const provider = first.warrant.catalog.get('mcp-up')!;
    assert.equal(provider.endpoints_untrusted, true);
    assert.ok(provider.environments.production!.revocation_url && provider.environments.production!.introspection_url, 'the sandbox advertises revocation and introspection');

    const codes = sandbox.stats().authorizationCodeRequests;
    connectionId = await first.connectTo('mcp-up', OWNER, ['items:read']);
    assert.equal(sandbox.stats().authorizationCodeRequests, codes + 1);

    const refreshes = sandbox.stats().refreshRequests;
    const fresh = await first.warrant.tokens.getFreshToken(connectionId, refreshNow());
    assert.equal(fresh.refreshed, true);
    assert.equal(sandbox.stats().refreshRequests, refreshes + 1);
    const row = await first.warrant.store.connections.get(connectionId);
    assert.equal(row!.status, 'active');
    assert.equal(row!.last_error, null);
  });

  test('the allowance withdrawn: the refresh is refused as address_refused, and nothing reaches the IdP', async () => {
    await first.warrant.close();
    second = await startLifecycle({
      sharedSandbox: sandbox,
      shared: { dataDir: first.env.WARRANT_DATA_DIR, masterKey: first.env.WARRANT_MASTER_KEY!, providersFile: first.providersFile },
      env: { WARRANT_MCP_ALLOWED_NETWORKS: '192.0.2.0/24' },
    });
    assert.equal(second.warrant.catalog.get('mcp-up')?.endpoints_untrusted, true, 'the stored server is loaded as a provider');
    const before = sandbox.stats();

    const outcome = await second.warrant.tokens.getFreshToken(connectionId, refreshNow()).then(
      (t) => ({ refreshed: t.refreshed }),
      (err: unknown) => ({ error: err }),
    );
    assert.ok(!('refreshed' in outcome) || outcome.refreshed === false, 'no refresh happened');
    const row = await second.warrant.store.connections.get(connectionId);
    assert.equal(row!.last_error, 'address_refused');
    assert.equal(row!.status, 'error', 'an operator setting refuses it: misconfigured, not retried as transient');
    assert.deepEqual(sandbox.stats(), before, 'no request reached the IdP');

    const entries = await second.warrant.audit.query({ type: 'connection.error', limit: 10 });
    const entry = entries.find((e) => e.subject === `connection:${connectionId}`);
    assert.ok(entry, 'the refusal is audited');
    assert.equal((entry.data as Record<string, unknown>).error, 'address_refused');
    assert.equal((entry.data as Record<string, unknown>).kind, 'misconfigured');
  });

  test('revocation and introspection are guarded too; the error names the setting, not a secret', async () => {
    const provider = second!.warrant.catalog.get('mcp-up')!;
    const resolver = createClientResolver({ timeoutMs: 5000, untrustedAllowedNetworks: ['10.0.0.0/8'] });
    const client = resolver(provider, 'production', {});
    const before = sandbox.stats();
    for (const call of [() => client.revoke('some-refresh-token-value', 'refresh_token'), () => client.introspect('some-refresh-token-value', 'refresh_token')]) {
      await assert.rejects(call(), (err: unknown) => {
        assert.ok(err instanceof OAuthCallError);
        assert.equal(err.error, 'address_refused');
        assert.equal(err.kind, 'misconfigured');
        assert.match(err.message, /127\.0\.0\.1/);
        assert.match(err.message, /WARRANT_MCP_ALLOWED_NETWORKS/);
        assert.doesNotMatch(err.message, /some-refresh-token-value/);
        return true;
      });
    }
    assert.deepEqual(sandbox.stats(), before, 'no request reached the IdP');

    // The same provider with its network allowed: the guard lets the call through.
    const allowed = createClientResolver({ timeoutMs: 5000, untrustedAllowedNetworks: ['127.0.0.0/8'] })(provider, 'production', {});
    const result = await allowed.introspect('not-a-token', 'access_token');
    assert.equal(result.active, false);
    assert.equal(sandbox.stats().introspections, before.introspections + 1);
  });
});
