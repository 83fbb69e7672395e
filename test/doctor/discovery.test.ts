import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { providerSchema } from '../../src/providers/index.ts';
import { compareMetadata, fetchMetadata, metadataUrls } from '../../src/doctor/discovery.ts';

const servers: Server[] = [];
after(() => servers.forEach((s) => s.close()));

/** A loopback server answering `routes[path]` (status, body, content type), 404 elsewhere. */
async function serve(routes: Record<string, [number, string, string?]>): Promise<string> {
  const server = createServer((req, res) => {
    const [status, body, type] = routes[req.url ?? ''] ?? [404, '{"error":"not_found"}'];
    res.writeHead(status, { 'content-type': type ?? 'application/json' }).end(body);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('metadata URLs: RFC 8414 inserts the well-known segment before the path, OIDC appends it', () => {
  assert.deepEqual(metadataUrls('https://id.example/tenant/v2/'), [
    'https://id.example/.well-known/oauth-authorization-server/tenant/v2',
    'https://id.example/tenant/v2/.well-known/openid-configuration',
  ]);
  assert.deepEqual(metadataUrls('https://id.example'), ['https://id.example/.well-known/oauth-authorization-server', 'https://id.example/.well-known/openid-configuration']);
});

test('OIDC metadata is used when RFC 8414 has none; a non-JSON 200, no metadata at all, and a closed port are told apart', async () => {
  const origin = await serve({
    '/good/.well-known/openid-configuration': [200, JSON.stringify({ issuer: 'x' })],
    '/.well-known/oauth-authorization-server/html': [200, '<html>login</html>', 'text/html'],
  });
  const good = await fetchMetadata(`${origin}/good`);
  assert.ok(good.found && good.url.endsWith('/good/.well-known/openid-configuration'));
  assert.equal(good.clock.length, 2, 'both answers carry a Date');
  const html = await fetchMetadata(`${origin}/html`);
  assert.ok(!html.found && html.problem === 'invalid' && /not JSON \(text\/html\)/.test(html.detail), JSON.stringify(html));
  const none = await fetchMetadata(`${origin}/none`);
  assert.ok(!none.found && none.problem === 'absent' && /answered 404/.test(none.detail));
  const closed = await serve({});
  servers.pop()!.close();
  await new Promise((r) => setTimeout(r, 50));
  const gone = await fetchMetadata(`${closed}/x`);
  assert.ok(!gone.found && gone.problem === 'unreachable' && /unreachable \(ECONNREFUSED\)/.test(gone.detail), JSON.stringify(gone));
});

test('metadata compared with the entry: endpoints, issuer, revocation and introspection, PKCE', () => {
  const provider = providerSchema.parse({
    id: 'acme',
    auth: 'oauth2',
    client_id: 'acme-app',
    environments: {
      production: {
        issuer: 'https://id.acme.example',
        authorization_url: 'https://id.acme.example/authorize',
        token_url: 'https://id.acme.example/token',
        introspection_url: 'https://id.acme.example/introspect',
        api_base_url: 'https://api.acme.example',
      },
    },
  });
  const env = provider.environments.production!;
  const matching = {
    issuer: 'https://id.acme.example',
    authorization_endpoint: 'https://id.acme.example/authorize',
    token_endpoint: 'https://id.acme.example/token',
    introspection_endpoint: 'https://id.acme.example/introspect',
    code_challenge_methods_supported: ['S256'],
  };
  const url = 'https://id.acme.example/.well-known/openid-configuration';
  assert.deepEqual(compareMetadata(provider, 'production', env, { url, metadata: matching }).map((f) => f.verdict), ['ok']);

  const drifted = compareMetadata(provider, 'production', env, {
    url,
    metadata: { ...matching, issuer: 'https://other.example', token_endpoint: 'https://id.acme.example/oauth2/token', revocation_endpoint: 'https://id.acme.example/revoke', introspection_endpoint: undefined, code_challenge_methods_supported: ['plain'] },
  });
  const line = (check: string, re: RegExp) => drifted.find((f) => f.check === check && re.test(f.detail));
  assert.equal(line('discovery', /names issuer https:\/\/other\.example/)?.verdict, 'error');
  assert.equal(line('discovery', /token_url .* differs from the IdP's token_endpoint https:\/\/id\.acme\.example\/oauth2\/token/)?.verdict, 'error');
  assert.equal(line('revocation', /the IdP offers revocation at https:\/\/id\.acme\.example\/revoke/)?.verdict, 'warn');
  assert.equal(line('introspection', /lists no introspection_endpoint/)?.verdict, 'warn');
  assert.equal(line('pkce', /lists only plain/)?.verdict, 'error');
  assert.match(line('discovery', /token_url/)!.fix, /set environments\.production\.token_url to https:\/\/id\.acme\.example\/oauth2\/token/);
});
