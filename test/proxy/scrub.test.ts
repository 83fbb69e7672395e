import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestWarrant, ADMIN_TOKEN } from '../helpers/app.ts';
import type { Warrant } from '../../src/warrant.ts';

const SECRET = 'upstream-secret-Ab+/=token-0123456789';

// Regression (security review, low 11): an upstream that echoes the credential (an error body
// quoting the token, a redirect carrying a query-injected token) handed it to the agent.
describe('the injected credential never travels back to the agent', () => {
  let upstream: http.Server;
  let dir: string;
  let warrant: Warrant;
  let cleanup: () => Promise<void>;
  let base: string;
  let agentKey: string;
  const conns: Record<string, string> = {};

  before(async () => {
    upstream = http.createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      const sent = req.headers.authorization?.replace(/^Bearer /, '') ?? url.searchParams.get('key') ?? '';
      if (url.pathname.endsWith('/echo')) return res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `bad request for token ${sent}` }));
      if (url.pathname.endsWith('/auth')) return res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `token ${sent} expired` }));
      if (url.pathname.endsWith('/redirect')) return res.writeHead(302, { location: `https://elsewhere.example/next?key=${encodeURIComponent(sent)}` }).end();
      res.writeHead(200).end('ok');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as { port: number }).port;
    dir = mkdtempSync(join(tmpdir(), 'warrant-scrub-'));
    const def = (id: string, injection?: object) => ({
      id,
      auth: 'api_key',
      environments: { production: { api_base_url: `http://127.0.0.1:${port}/api` } },
      scopes: { all: [{ method: '*', path: '/**' }] },
      auth_failures: [],
      ...(injection ? { token_injection: injection } : {}),
    });
    writeFileSync(join(dir, 'p.json'), JSON.stringify([def('echo-header'), def('echo-query', { in: 'query', name: 'key', format: '{token}' })]));
    ({ warrant, cleanup } = await startTestWarrant({ WARRANT_PROVIDERS: join(dir, 'p.json') }));
    base = await warrant.listen();
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    for (const provider of ['echo-header', 'echo-query']) {
      const res = await fetch(`${base}/v1/connections`, { method: 'POST', headers: admin, body: JSON.stringify({ provider, owner: 'o@example.com', access_token: SECRET, scopes: ['all'] }) });
      assert.equal(res.status, 201, await res.clone().text());
      conns[provider] = ((await res.json()) as { id: string }).id;
    }
    const res = await fetch(`${base}/v1/agents`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'a', owner: 'o@example.com', grants: Object.values(conns).map((connection) => ({ connection, scopes: ['all'] })) }),
    });
    agentKey = ((await res.json()) as { api_key: string }).api_key;
  });
  after(async () => {
    await cleanup?.();
    await new Promise((r) => upstream.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const call = async (provider: string, path: string) => {
    const res = await fetch(`${base}/v1/proxy/${conns[provider]}${path}`, { headers: { authorization: `Bearer ${agentKey}` }, redirect: 'manual' });
    return { status: res.status, location: res.headers.get('location'), body: await res.text() };
  };
  const leaks = (text: string | null) => !!text && (text.includes(SECRET) || text.includes(encodeURIComponent(SECRET)));

  test('an error body quoting the token', async () => {
    const r = await call('echo-header', '/echo');
    assert.equal(r.status, 400);
    assert.ok(!leaks(r.body), r.body);
    assert.match(r.body, /\[redacted\]/);
  });

  test('a 401 refused twice: the upstream_body of the problem', async () => {
    const r = await call('echo-header', '/auth');
    assert.equal(r.status, 401);
    assert.ok(!leaks(r.body), r.body);
  });

  test('a redirect carrying a query-injected token', async () => {
    const r = await call('echo-query', '/redirect');
    assert.equal(r.status, 302);
    assert.ok(!leaks(r.location), String(r.location));
  });
});
