import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN, startTestWarrant } from '../helpers/app.ts';
import type { Warrant } from '../../src/warrant.ts';

// Bad input from agents and admins (issue 7, item 8). Reproduces: Node's and Fastify's own
// non-problem bodies (`{"error":"Bad Request","message":"Client Error"}`) for a CR in a header or
// oversized headers, `FST_ERR_BAD_URL` echoing the path back for invalid UTF-8, a 15 KB path
// echoed back in a 414, unknown body members named only as `body`, and invalid UTF-8 in a JSON
// body stored as U+FFFD. Each must be a typed problem (or a clean close), and the server must go on serving.

const ACCESS_TOKEN = 'imported_access_token_7d1e0c';
const SECRET_HEADER = 'header_secret_value_99ab';

let warrant: Warrant;
let cleanup: () => Promise<void>;
let logs: Awaited<ReturnType<typeof startTestWarrant>>['logs'];
let port: number;
let upstream: http.Server;
let upstreamRequests: { url: string; headers: http.IncomingHttpHeaders }[] = [];
let dir: string;
let conn: string;
let agentKey: string;
const admin = `Authorization: Bearer ${ADMIN_TOKEN}\r\n`;

before(async () => {
  upstream = http.createServer((req, res) => {
    upstreamRequests.push({ url: req.url!, headers: req.headers });
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const api = `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}`;
  dir = mkdtempSync(join(tmpdir(), 'warrant-bad-input-'));
  const definition = {
    id: 'local-api',
    auth: 'oauth2',
    client_id: 'c',
    environments: { production: { authorization_url: `${api}/authorize`, token_url: `${api}/token`, api_base_url: `${api}/v2` } },
    scopes: { read: [{ method: ['GET', 'POST'], path: '/**' }] },
  };
  writeFileSync(join(dir, 'local-api.json'), JSON.stringify(definition));
  ({ warrant, cleanup, logs } = await startTestWarrant({ WARRANT_PROVIDERS: join(dir, 'local-api.json') }));
  await warrant.app.listen({ port: 0, host: '127.0.0.1' });
  port = (warrant.app.server.address() as net.AddressInfo).port;
  const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const imported = await warrant.app.inject({
    method: 'POST',
    url: '/v1/connections',
    headers,
    payload: { provider: 'local-api', owner: 'alice@example.com', access_token: ACCESS_TOKEN, expires_in: 3600, scopes: ['read'] },
  });
  assert.equal(imported.statusCode, 201, imported.body);
  conn = imported.json().id;
  const agent = await warrant.app.inject({
    method: 'POST',
    url: '/v1/agents',
    headers,
    payload: { name: 'a', owner: 'alice@example.com', grants: [{ connection: conn, scopes: ['read'] }] },
  });
  assert.equal(agent.statusCode, 201, agent.body);
  agentKey = agent.json().api_key;
});

after(async () => {
  await cleanup?.();
  await new Promise<void>((r) => upstream?.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  text: string;
}

/** Writes bytes as they are on a fresh connection; resolves with what came back once the server closes it (or `Connection: close` is honoured). */
function raw(bytes: string | Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within 10 s; got ${Buffer.concat(chunks).toString('latin1').slice(0, 300)}`));
    }, 10_000);
    socket.on('data', (d) => chunks.push(d));
    // A reset after the answer (the server closing while we still write) still leaves the answer read.
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const [head = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      let body = rest.join('\r\n\r\n');
      // Unchunk the simple single-chunk case of the raw proxy route.
      if (headers['transfer-encoding'] === 'chunked') body = body.split('\r\n').filter((_, i) => i % 2 === 1).join('');
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body, text });
    });
    socket.write(bytes);
  });
}

const request = (line: string, headers = '', body = '') => raw(`${line} HTTP/1.1\r\nHost: x\r\n${headers}Connection: close\r\n\r\n${body}`);
const agent = () => `Authorization: Bearer ${agentKey}\r\n`;

/** A problem with code invalid_request, status and field as given; no secret in it; and the server still serves. */
async function invalid(answer: RawAnswer, status: number, field: string | undefined) {
  assert.equal(answer.status, status, answer.text.slice(0, 500));
  assert.match(answer.headers['content-type'] ?? '', /^application\/problem\+json/, answer.text.slice(0, 500));
  const problem = JSON.parse(answer.body);
  assert.equal(problem.code, 'invalid_request');
  assert.equal(problem.status, status);
  assert.equal(problem.field, field);
  assert.ok(problem.type && problem.title && problem.instance);
  for (const secret of [ACCESS_TOKEN, SECRET_HEADER, ADMIN_TOKEN, agentKey]) assert.ok(!answer.text.includes(secret), `a secret in: ${answer.text}`);
  assert.ok(answer.body.length < 1000, 'the input is not echoed back');
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(health.status, 200, 'the server goes on serving');
  return problem;
}

describe('requests Node cannot parse: a problem, the connection closed, the server serving on', () => {
  test('oversized headers answer 431 invalid_request (headers), on admin and proxy paths alike', async () => {
    const big = `X-Big: ${'a'.repeat(20_000)}\r\n`;
    await invalid(await request('GET /healthz', big), 431, 'headers');
    await invalid(await request(`GET /v1/proxy/${conn}/items`, agent() + big), 431, 'headers');
    await invalid(await request(`GET /v1/connections/${'a'.repeat(20_000)}`, admin), 431, 'headers');
  });

  test('CR, LF or NUL inside a header value, and conflicting framing headers, answer 400 (headers)', async () => {
    // A bare CR, a bare LF, a NUL, an obs-fold continuation line (RFC 9112 §5.2) carrying a secret.
    for (const bad of [`X-A: a\rb\r\n`, `X-A: a\nX-Injected: 1\r\n`, `X-A: a\0b\r\n`, `X-A: a\r\n ${SECRET_HEADER}\r\n`]) {
      await invalid(await request(`GET /v1/proxy/${conn}/items`, agent() + bad), 400, 'headers');
      await invalid(await request('GET /v1/agents', admin + bad), 400, 'headers');
    }
    await invalid(await request(`POST /v1/proxy/${conn}/items`, `${agent()}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n`, '0\r\n\r\n'), 400, 'headers');
    assert.equal(upstreamRequests.length, 0, 'nothing reached the upstream');
  });

  test('a malformed request line answers 400 (request_line)', async () => {
    await invalid(await raw('GET /healthz HTTP/9.9\r\n\r\n'), 400, 'request_line');
    await invalid(await raw('GET /v1/agents with spaces HTTP/1.1\r\nHost: x\r\n\r\n'), 400, 'request_line');
  });

  test('on a keep-alive connection, a bad request after a good one is answered and only that connection closed', async () => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    for (let i = 0; i < 200 && !text.includes('{"status":"ok"}'); i++) await new Promise((r) => setTimeout(r, 25));
    assert.match(text, /^HTTP\/1\.1 200 /);
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n');
    await closed;
    assert.match(text, /\{"status":"ok"\}HTTP\/1\.1 400 Bad Request\r\n[^]*"code":"invalid_request"/);
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  });
});

describe('paths', () => {
  test('invalid UTF-8 in the proxied path, the connection id or an admin path: 400 invalid_request (path), nothing forwarded', async () => {
    await invalid(await request(`GET /v1/proxy/${conn}/%C3%28`, agent()), 400, 'path');
    await invalid(await request(`GET /v1/proxy/${conn}/items/%FF%FE`, agent()), 400, 'path');
    await invalid(await request('GET /v1/proxy/%C3%28/items', agent()), 400, 'path');
    await invalid(await request('GET /v1/connections/%C3%28', admin), 400, 'path');
    await invalid(await request('GET /v1/nothing-here/%C3%28', admin), 400, 'path');
    await invalid(await request('GET /v1/connections/%E0%A4', admin), 400, 'path');
    // A CR/LF smuggled percent-encoded into the path never becomes a header upstream.
    await invalid(await request(`GET /v1/proxy/${conn}/items%0D%0AX-Injected:%201`, agent()), 400, 'path');
    assert.equal(upstreamRequests.length, 0);
  });

  test('raw bytes ≥ 0x80 in the request line (not percent-encoded) answer 400 (request_line)', async () => {
    const line = Buffer.concat([Buffer.from(`GET /v1/proxy/${conn}/items/`), Buffer.from([0xc3, 0x28]), Buffer.from(` HTTP/1.1\r\nHost: x\r\n${agent()}Connection: close\r\n\r\n`)]);
    await invalid(await raw(line), 400, 'request_line');
    assert.equal(upstreamRequests.length, 0);
  });

  test('an id segment longer than any id answers 414 invalid_request (path) without echoing it', async () => {
    await invalid(await request(`GET /v1/connections/${'c'.repeat(5_000)}`, admin), 414, 'path');
    await invalid(await request(`GET /v1/agents/${'c'.repeat(5_000)}`, admin), 414, 'path');
  });

  test('a long unknown path answers 404 with the path cut short', async () => {
    const answer = await request(`GET /v1/${'x'.repeat(8_000)}`, admin);
    assert.equal(answer.status, 404);
    assert.ok(answer.body.length < 600, answer.body);
  });

  test('a long proxied path (under the header limit) reaches the upstream as it is', async () => {
    const long = `/items/${'p'.repeat(10_000)}`;
    const answer = await request(`GET /v1/proxy/${conn}${long}`, agent());
    assert.equal(answer.status, 200, answer.text.slice(0, 300));
    assert.equal(upstreamRequests.at(-1)!.url, `/v2${long}`);
    assert.equal(upstreamRequests.at(-1)!.headers.authorization, `Bearer ${ACCESS_TOKEN}`);
    upstreamRequests = [];
  });
});

describe('admin JSON bodies', () => {
  const post = (path: string, body: string | Buffer, contentType = 'application/json') =>
    raw(Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: x\r\n${admin}Content-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`), Buffer.from(body)]));
  const count = async () => (await warrant.app.inject({ url: '/v1/connections', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json().connections.length;

  test('bad JSON is invalid_request (body): truncated, empty, not UTF-8, prototype poisoning, nested too deep to matter', async () => {
    const before = await count();
    const bodies: (string | Buffer)[] = [
      `{"provider":"local-api","access_token":"${ACCESS_TOKEN}"`,
      '',
      '{',
      "{'single':'quotes'}",
      Buffer.concat([Buffer.from('{"provider":"local-api","owner":"'), Buffer.from([0xc3, 0x28]), Buffer.from(`","access_token":"${ACCESS_TOKEN}","scopes":[]}`)]),
      `{"__proto__":{"admin":true},"provider":"local-api","owner":"o","access_token":"${ACCESS_TOKEN}","scopes":[]}`,
      `{"constructor":{"prototype":{"admin":true}},"provider":"local-api"}`,
      '['.repeat(50_000),
    ];
    for (const body of bodies) await invalid(await post('/v1/connections', body), 400, 'body');
    await invalid(await post('/v1/connections', `${'['.repeat(5_000)}${']'.repeat(5_000)}`), 400, 'body');
    await invalid(await post('/v1/connections', '"a string"'), 400, 'body');
    assert.equal(await count(), before, 'nothing stored');
  });

  test('a body that is not JSON at all: invalid_request (content-type)', async () => {
    await invalid(await post('/v1/connections', 'provider=local-api', 'application/x-www-form-urlencoded'), 400, 'content-type');
  });

  test('unknown members are refused, named as the field; nothing is stored; a secret sent along is not echoed', async () => {
    const before = await count();
    const body = { provider: 'local-api', owner: 'o', access_token: ACCESS_TOKEN, expires_at: 3600, scopes: ['read'] };
    const problem = await invalid(await post('/v1/connections', JSON.stringify(body)), 400, 'body.expires_at');
    assert.match(problem.detail, /not a known field/);
    const nested = { name: 'n', owner: 'o', grants: [{ connection: conn, scopes: ['read'], tokenExport: true }] };
    await invalid(await post('/v1/agents', JSON.stringify(nested)), 400, 'body.grants[0].tokenExport');
    // A member whose name looks like a pasted value is not repeated.
    const pasted = { url: 'https://hooks.example/x', events: ['*'], [`${SECRET_HEADER}_${'z'.repeat(40)}`]: true };
    await invalid(await post('/v1/webhooks', JSON.stringify(pasted)), 400, 'body');
    assert.equal(await count(), before, 'nothing stored');
  });

  test('wrong types name the field and do not echo the value', async () => {
    const body = { provider: 'local-api', owner: 'o', access_token: ACCESS_TOKEN, expires_in: '3600', scopes: ['read'] };
    await invalid(await post('/v1/connections', JSON.stringify(body)), 400, 'body.expires_in');
    await invalid(await post('/v1/connections', JSON.stringify({ ...body, expires_in: 3600, refresh_token: 42 })), 400, 'body.refresh_token');
    // An absurd lifetime is refused at import, as it is normalised from a token endpoint (at most a year).
    for (const expires_in of [1e12, -5, 0, 3600.5]) await invalid(await post('/v1/connections', JSON.stringify({ ...body, expires_in })), 400, 'body.expires_in');
  });

  test('nothing above was logged with a secret in it', () => {
    for (const secret of [ACCESS_TOKEN, SECRET_HEADER, ADMIN_TOKEN, agentKey]) assert.ok(!logs.text().includes(secret), secret);
  });
});
