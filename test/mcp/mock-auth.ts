import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { jwtVerify, type CryptoKey as JoseKey } from 'jose';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant, type Warrant } from '../../src/warrant.ts';
import { ADMIN_TOKEN, captureLogger } from '../helpers/app.ts';
import { pageForm } from '../helpers/connect-page.ts';

// A remote MCP server with an authorization server of its own, shaped by options, recording what a
// client (Warrant's gateway) asks of it: the gateway's discovery, registration, scope selection,
// token endpoint authentication and step-up are checked against it. Its authorization endpoint
// approves at once (no page), as the MCP conformance suite's mock does.

export interface MockOptions {
  /** Where the RFC 9728 document is: path-based, at the root, only behind the 401's pointer, or nowhere (2025-03-26). */
  prm?: 'path' | 'root' | 'pointer' | 'none';
  /** The `resource` the document names (default: the identifier it is served for). */
  prmResource?: string;
  /** `scope` of the 401 challenge. */
  challengeScope?: string;
  /** PRM `scopes_supported`. */
  scopesSupported?: string[];
  /** AS metadata `scopes_supported`. */
  asScopes?: string[];
  /** The issuer's path (`/tenant1`), metadata at `{path}/.well-known/openid-configuration`. */
  asPath?: string;
  /** 2025-03-26: AS metadata at the server's origin (`metadata`), or none at all (`fallback`). */
  legacy?: 'metadata' | 'fallback';
  authMethods?: string[];
  cimd?: boolean;
  /** What DCR answers as token_endpoint_auth_method (default: the one asked for). */
  registerAs?: (asked: string) => { secret?: string; method?: string };
  /** Scopes a tools/call needs; a token without them gets 403 insufficient_scope naming these. */
  callScopes?: string[];
  /** Every tools/call is refused 403 insufficient_scope naming `callScopes`, whatever the token holds. */
  refuseCalls?: boolean;
  /**
   * A client the token endpoint knows for the client_credentials grant (SEP-1046): by its secret
   * (client_secret_basic or _post) or its public key (private_key_jwt, RFC 7523 §2.2: aud the
   * issuer, iss = sub = client_id, at most 60 s, jti never reused). Mutable: change `secret` or
   * `publicKey` to revoke what Warrant holds.
   */
  machineClient?: { clientId: string; secret?: string; publicKey?: JoseKey };
  /** AS metadata `grant_types_supported`. */
  grantTypes?: string[];
  /** AS metadata `token_endpoint_auth_signing_alg_values_supported`. */
  signingAlgs?: string[];
  /** An AS for machines only: no authorization endpoint, no PKCE in its metadata. */
  machineOnly?: boolean;
  /** Lifetime of the tokens issued, in seconds (default 3600); an expired one is refused at /mcp. */
  tokenTtl?: number;
}

/** A client assertion the mock accepted: its claims, to check what Warrant signed. */
export interface SeenAssertion {
  alg: string;
  claims: Record<string, unknown>;
}

export interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface MockServer {
  url: string;
  origin: string;
  requests: Recorded[];
  /** Client assertions accepted at the token endpoint (private_key_jwt). */
  assertions: SeenAssertion[];
  /** Requests to /mcp refused because their token had expired. */
  expiredRefusals(): number;
  at(path: string): Recorded[];
  close(): Promise<void>;
}

const readBody = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let b = '';
    req.on('data', (d) => (b += d));
    req.on('end', () => resolve(b));
  });

export async function startMockServer(o: MockOptions = {}): Promise<MockServer> {
  const requests: Recorded[] = [];
  const tokens = new Map<string, string[]>();
  const expiry = new Map<string, number>();
  const codes = new Map<string, string[]>();
  const assertions: SeenAssertion[] = [];
  const jtis = new Set<string>();
  let expiredRefusals = 0;
  let n = 0;
  let origin = '';
  const asBase = () => `${origin}${o.asPath ?? ''}`;
  const prmPath = o.prm === 'root' ? '/.well-known/oauth-protected-resource' : o.prm === 'pointer' ? '/meta/prm.json' : '/.well-known/oauth-protected-resource/mcp';
  const legacyAs = o.prm === 'none';
  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const asMetadata = () => ({
    issuer: legacyAs ? `${origin}/oauth` : asBase(),
    ...(o.machineOnly ? {} : { authorization_endpoint: `${asBase()}${legacyAs ? '/oauth' : ''}/authorize` }),
    token_endpoint: `${asBase()}${legacyAs ? '/oauth' : ''}/token`,
    ...(o.machineOnly ? {} : { registration_endpoint: `${asBase()}${legacyAs ? '/oauth' : ''}/register`, response_types_supported: ['code'], code_challenge_methods_supported: ['S256'] }),
    token_endpoint_auth_methods_supported: o.authMethods ?? ['client_secret_basic', 'client_secret_post', 'none'],
    ...(o.asScopes ? { scopes_supported: o.asScopes } : {}),
    ...(o.cimd ? { client_id_metadata_document_supported: true } : {}),
    ...(o.grantTypes ? { grant_types_supported: o.grantTypes } : {}),
    ...(o.signingAlgs ? { token_endpoint_auth_signing_alg_values_supported: o.signingAlgs } : {}),
  });

  /** RFC 6749 §2.3 / RFC 7523 §3: is the token request's client the machine client? */
  async function machineClientOk(form: URLSearchParams, authorization: string | undefined): Promise<boolean> {
    const m = o.machineClient;
    if (!m) return false;
    if (m.publicKey) {
      if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') return false;
      try {
        const { payload, protectedHeader } = await jwtVerify(form.get('client_assertion') ?? '', m.publicKey, { audience: asMetadata().issuer, issuer: m.clientId, subject: m.clientId });
        if (typeof payload.jti !== 'string' || jtis.has(payload.jti) || !payload.exp || !payload.iat || payload.exp - payload.iat > 60) return false;
        jtis.add(payload.jti);
        assertions.push({ alg: protectedHeader.alg, claims: payload as Record<string, unknown> });
        return true;
      } catch {
        return false;
      }
    }
    const basic = /^Basic (.+)$/.exec(authorization ?? '')?.[1];
    if (basic) {
      const [id, secret] = Buffer.from(basic, 'base64').toString('utf8').split(':').map((v) => decodeURIComponent(v.replace(/\+/g, ' ')));
      return id === m.clientId && secret === m.secret;
    }
    return form.get('client_id') === m.clientId && form.get('client_secret') === m.secret && m.secret !== undefined;
  }

  const server: HttpServer = createHttpServer(async (req, res) => {
    const u = new URL(req.url ?? '/', origin);
    const body = await readBody(req);
    requests.push({ method: req.method ?? 'GET', path: u.pathname, query: u.searchParams, headers: req.headers, body });
    const path = u.pathname;
    // The protected resource metadata.
    if (o.prm !== 'none' && path === prmPath) {
      const identifier = o.prm === 'root' ? origin : `${origin}/mcp`;
      return json(res, 200, { resource: o.prmResource ?? identifier, authorization_servers: [asBase()], ...(o.scopesSupported ? { scopes_supported: o.scopesSupported } : {}) });
    }
    // The authorization server's metadata.
    const metaPath = legacyAs ? (o.legacy === 'metadata' ? '/.well-known/oauth-authorization-server' : undefined) : o.asPath ? `${o.asPath}/.well-known/openid-configuration` : '/.well-known/oauth-authorization-server';
    if (path === metaPath) return json(res, 200, asMetadata());
    const asPrefix = legacyAs ? (o.legacy === 'metadata' ? '/oauth' : '') : (o.asPath ?? '');
    if (path === `${asPrefix}/authorize`) {
      const code = `code-${++n}`;
      codes.set(code, (u.searchParams.get('scope') ?? '').split(' ').filter(Boolean));
      const back = new URL(u.searchParams.get('redirect_uri')!);
      back.searchParams.set('code', code);
      back.searchParams.set('state', u.searchParams.get('state') ?? '');
      res.writeHead(302, { location: back.href });
      return void res.end();
    }
    if (path === `${asPrefix}/token` && req.method === 'POST') {
      const form = new URLSearchParams(body);
      const machine = form.get('grant_type') === 'client_credentials';
      if (machine && !o.machineClient) return json(res, 400, { error: 'unsupported_grant_type' });
      // RFC 6749 §5.2: a failed client authentication is 401 invalid_client.
      if (machine && !(await machineClientOk(form, req.headers.authorization))) return json(res, 401, { error: 'invalid_client' }, { 'www-authenticate': 'Basic realm="mock"' });
      const scopes = machine ? (form.get('scope') ?? '').split(' ').filter(Boolean) : (codes.get(form.get('code') ?? '') ?? []);
      const token = `tok-${++n}`;
      const ttl = o.tokenTtl ?? 3600;
      tokens.set(token, scopes);
      expiry.set(token, Date.now() + ttl * 1000);
      return json(res, 200, { access_token: token, token_type: 'Bearer', expires_in: ttl, ...(scopes.length ? { scope: scopes.join(' ') } : {}) });
    }
    if (path === `${asPrefix}/register` && req.method === 'POST') {
      const asked = (JSON.parse(body) as { token_endpoint_auth_method?: string }).token_endpoint_auth_method ?? 'client_secret_basic';
      const r = o.registerAs?.(asked) ?? { secret: asked === 'none' ? undefined : 'registered-secret', method: asked };
      return json(res, 201, { client_id: 'registered-client', ...(r.secret ? { client_secret: r.secret } : {}), ...(r.method ? { token_endpoint_auth_method: r.method } : {}), redirect_uris: [] });
    }
    if (path !== '/mcp') return json(res, 404, { error: 'not_found' });
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const expired = !!token && (expiry.get(token) ?? Infinity) <= Date.now();
    if (expired) expiredRefusals++;
    const granted = token && !expired ? tokens.get(token) : undefined;
    if (!granted) {
      const params = [...(o.prm === 'pointer' ? [`resource_metadata="${origin}${prmPath}"`] : []), ...(o.challengeScope ? [`scope="${o.challengeScope}"`] : []), ...(token ? ['error="invalid_token"'] : [])];
      return json(res, 401, { error: 'invalid_token' }, { 'www-authenticate': `Bearer${params.length ? ` ${params.join(', ')}` : ''}` });
    }
    // Stateless: no GET stream, no session to DELETE.
    if (req.method !== 'POST') return json(res, 405, { error: 'method_not_allowed' });
    const rpc = JSON.parse(body) as { method?: string };
    if (rpc.method === 'tools/call' && o.callScopes && (o.refuseCalls || !o.callScopes.every((s) => granted.includes(s)))) {
      return json(res, 403, { error: 'insufficient_scope' }, { 'www-authenticate': `Bearer error="insufficient_scope", scope="${o.callScopes.join(' ')}"` });
    }
    const mcp = new McpServer({ name: 'mock', version: '1' });
    mcp.registerTool('hello', { description: 'hello', inputSchema: { name: z.string().optional() } }, async () => ({ content: [{ type: 'text', text: 'hello' }] }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.once('close', () => void mcp.close());
    await mcp.connect(transport);
    await transport.handleRequest(req, res, JSON.parse(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/mcp`,
    origin,
    requests,
    assertions,
    expiredRefusals: () => expiredRefusals,
    at: (p: string) => requests.filter((r) => r.path === p),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A Warrant on a fixed loopback port (the connect callback an upstream AS redirects to is on it),
 * embedded SQLite, loopback allowed to the gateway.
 */
export async function startGatewayWarrant(env: Record<string, string> = {}, logger = captureLogger('warn').logger): Promise<{ warrant: Warrant; base: string; cleanup(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-gw-'));
  const port = await freePort();
  const config = loadConfig({
    WARRANT_DATA_DIR: dir,
    WARRANT_ADMIN_TOKEN: ADMIN_TOKEN,
    WARRANT_PORT: String(port),
    WARRANT_HOST: '127.0.0.1',
    WARRANT_PUBLIC_URL: `http://127.0.0.1:${port}`,
    WARRANT_MCP_ALLOWED_NETWORKS: '127.0.0.0/8,::1',
    WARRANT_HTTP_TIMEOUT_MS: '5000',
    ...env,
  });
  const warrant = await createWarrant(config, { logger, notice: () => {}, scheduler: false, webhooks: false });
  const base = (await warrant.listen()).replace('localhost', '127.0.0.1');
  return {
    warrant,
    base,
    async cleanup() {
      await warrant.close({ graceMs: 1000 });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The owner's browser through a connect link: Warrant's start URL (its cookie kept), the upstream's
 * authorization endpoint, back to Warrant's callback. Throws when a step answers 4xx/5xx.
 */
export async function playOwner(link: string): Promise<void> {
  const own = new URL(link).origin;
  const cookies = new Map<string, string>();
  let url = link;
  for (let hop = 0; hop < 10; hop++) {
    const mine = new URL(url).origin === own;
    const headers: Record<string, string> = mine && cookies.size ? { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {};
    const res = await fetch(url, { headers, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
    if (mine) {
      for (const c of res.headers.getSetCookie()) {
        const pair = c.split(';')[0]!;
        const i = pair.indexOf('=');
        cookies.set(pair.slice(0, i), pair.slice(i + 1));
      }
    }
    const location = res.headers.get('location');
    // Warrant's hosted connect page (a session's connect_url): the owner presses Continue.
    let form;
    if (mine && res.status === 200) form = pageForm(await res.text());
    else await res.body?.cancel();
    if (res.status >= 400) throw new Error(`the connect flow stopped at ${new URL(url).pathname} with ${res.status}`);
    if (form) {
      const go = await fetch(new URL(form.action, url), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: own, cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
        body: new URLSearchParams(form.fields).toString(),
        redirect: 'manual',
        signal: AbortSignal.timeout(10_000),
      });
      for (const c of go.headers.getSetCookie()) {
        const pair = c.split(';')[0]!;
        const i = pair.indexOf('=');
        cookies.set(pair.slice(0, i), pair.slice(i + 1));
      }
      await go.body?.cancel();
      if (go.status !== 303 || !go.headers.get('location')) throw new Error(`Continue on the connect page answered ${go.status}`);
      url = new URL(go.headers.get('location')!, url).href;
      continue;
    }
    if (res.status < 300 || !location) return;
    url = new URL(location, url).href;
  }
  throw new Error('too many redirects in the connect flow');
}
