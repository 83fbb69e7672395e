// A plain upstream API on loopback that records every request it gets (method, URL, headers,
// body), and a Warrant instance in front of it with an imported connection: for proxy tests that
// must see exactly what reached the upstream, or that nothing did.
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant, type Warrant } from '../../src/warrant.ts';
import { ADMIN_TOKEN, captureLogger } from '../helpers/app.ts';

export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface LocalApi {
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

/** What the local API answers; the default is `200 {"ok":true}`. */
export type Answer = { status: number; headers?: Record<string, string>; body?: string };

export async function startLocalApi(respond: (request: Seen) => Answer | undefined = () => undefined): Promise<LocalApi> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
      seen.push(request);
      const answer = respond(request) ?? { status: 200, body: '{"ok":true}' };
      res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers }).end(answer.body ?? '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Scopes of the local provider: plain read/write, and Drive-like metadata vs content rules. */
export function localProvider(api: string) {
  return {
    id: 'local-api',
    name: 'local API',
    auth: 'oauth2',
    client_id: 'c',
    environments: { production: { authorization_url: `${api}/authorize`, token_url: `${api}/token`, api_base_url: `${api}/v2` } },
    scopes: {
      read: [{ method: 'GET', path: '/**' }],
      write: [{ method: ['POST', 'PUT', 'PATCH', 'DELETE'], path: '/**' }],
      post_items: [{ method: 'POST', path: '/items' }],
      'files.metadata': [
        { method: 'GET', path: '/files', query: { alt: ['json'], $alt: ['json'] } },
        { method: 'GET', path: '/files/*', query: { alt: ['json'], $alt: ['json'] } },
      ],
      'files.content': [{ method: 'GET', path: '/files/**' }],
      'projects.one': [{ method: 'GET', path: '/projects/*' }],
    },
  };
}

export interface Instance {
  warrant: Warrant;
  base: string;
  logs: ReturnType<typeof captureLogger>;
  close(): Promise<void>;
}

/** A Warrant instance on port 0 with the local provider, settings from `env`. */
export async function startInstance(api: LocalApi, env: Record<string, string> = {}, dir?: string): Promise<Instance> {
  const own = dir === undefined;
  const dataDir = dir ?? mkdtempSync(join(tmpdir(), 'warrant-local-api-'));
  const providers = join(dataDir, 'local-api.json');
  writeFileSync(providers, JSON.stringify(localProvider(api.url)));
  const logs = captureLogger('warn');
  const config = loadConfig({ WARRANT_DATA_DIR: dataDir, WARRANT_ADMIN_TOKEN: ADMIN_TOKEN, WARRANT_PORT: '0', WARRANT_PROVIDERS: providers, ...env });
  const warrant = await createWarrant(config, { logger: logs.logger, notice: () => {}, scheduler: false, webhooks: false });
  await warrant.listen();
  const base = `http://127.0.0.1:${(warrant.app.server.address() as net.AddressInfo).port}`;
  return {
    warrant,
    base,
    logs,
    async close() {
      await warrant.close({ graceMs: 2_000 });
      if (own) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** Imports a connection holding every local scope; returns its id. */
export async function importConnection(warrant: Warrant, owner = 'alice@example.com'): Promise<string> {
  const res = await warrant.app.inject({
    method: 'POST',
    url: '/v1/connections',
    headers: admin,
    payload: {
      provider: 'local-api',
      owner,
      access_token: 'local_access_token_0123456789',
      expires_in: 3600,
      scopes: Object.keys(localProvider('http://x').scopes),
    },
  });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().id as string;
}

/** Creates an agent with `scopes` on `connection` (and token export); returns its key. */
export async function createAgent(warrant: Warrant, connection: string, scopes: string[], name = 'agent'): Promise<{ id: string; key: string }> {
  const res = await warrant.app.inject({
    method: 'POST',
    url: '/v1/agents',
    headers: admin,
    payload: { name, owner: 'alice@example.com', grants: [{ connection, scopes, token_export: true }] },
  });
  assert.equal(res.statusCode, 201, res.body);
  return { id: res.json().id as string, key: res.json().api_key as string };
}

/** Sends bytes on a fresh socket; resolves with what came back and when the server closed it. */
export function rawExchange(
  base: string,
  bytes: string,
  timeoutMs = 60_000,
): { socket: net.Socket; closed: Promise<{ text: string; status: number; closedAt: number }> } {
  const u = new URL(base);
  const socket = net.connect(Number(u.port), u.hostname);
  const chunks: Buffer[] = [];
  socket.on('data', (d) => chunks.push(d));
  socket.on('error', () => {});
  const closed = new Promise<{ text: string; status: number; closedAt: number }>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`not closed within ${timeoutMs} ms; got ${Buffer.concat(chunks).toString('latin1').slice(0, 200)}`));
    }, timeoutMs);
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ text, status: Number(text.split(' ')[1] ?? 0), closedAt: Date.now() });
    });
  });
  socket.write(bytes);
  return { socket, closed };
}

export interface ProvidersInstance {
  warrant: Warrant;
  base: string;
  logs: ReturnType<typeof captureLogger>;
  /** Imports a connection (admin API); returns its id. */
  importConnection(provider: string, params?: Record<string, string>, accessToken?: string): Promise<string>;
  /** An agent of alice@example.com with `scopes` on `connection`; returns its key. */
  agentKey(connection: string, scopes: string[]): Promise<string>;
  /** A proxied call as the agent `key`. */
  call(key: string, connection: string, path: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

/** A Warrant instance on port 0 whose WARRANT_PROVIDERS file holds `providers`. */
export async function startWithProviders(providers: object[]): Promise<ProvidersInstance> {
  const dataDir = mkdtempSync(join(tmpdir(), 'warrant-providers-'));
  const file = join(dataDir, 'providers.json');
  writeFileSync(file, JSON.stringify(providers));
  const logs = captureLogger('warn');
  const config = loadConfig({ WARRANT_DATA_DIR: dataDir, WARRANT_ADMIN_TOKEN: ADMIN_TOKEN, WARRANT_PORT: '0', WARRANT_PROVIDERS: file });
  const warrant = await createWarrant(config, { logger: logs.logger, notice: () => {}, scheduler: false, webhooks: false });
  await warrant.listen();
  const base = `http://127.0.0.1:${(warrant.app.server.address() as net.AddressInfo).port}`;
  return {
    warrant,
    base,
    logs,
    async importConnection(provider, params, accessToken = 'local_access_token_0123456789') {
      const scopes = Object.keys((providers.find((p) => (p as { id: string }).id === provider) as { scopes: object }).scopes);
      const res = await warrant.app.inject({
        method: 'POST',
        url: '/v1/connections',
        headers: admin,
        payload: { provider, owner: 'alice@example.com', access_token: accessToken, expires_in: 3600, scopes, ...(params ? { params } : {}) },
      });
      assert.equal(res.statusCode, 201, res.body);
      return res.json().id as string;
    },
    async agentKey(connection, scopes) {
      return (await createAgent(warrant, connection, scopes, `agent-${scopes.join('-')}`)).key;
    },
    call: (key, connection, path, init = {}) =>
      fetch(`${base}/v1/proxy/${connection}${path}`, { ...init, headers: { authorization: `Bearer ${key}`, ...(init.headers as Record<string, string>) } }),
    async close() {
      await warrant.close({ graceMs: 2_000 });
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
