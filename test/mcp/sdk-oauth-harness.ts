import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { startSandbox, sandboxDefaults, type Sandbox } from '../../src/sandbox/index.ts';
import { defaults } from '../../src/config/index.ts';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { authorizeAsOwner, type Browser } from '../authz/helpers.ts';
import { startUpstream } from './upstream.ts';

// The scene shared by test/mcp/sdk-oauth.test.ts and bench/mcp-session.ts: an upstream MCP server
// built with the SDK behind the sandbox IdP (5 s rotating tokens), registered in Warrant's gateway
// and connected by its owner; and an MCP client (the official SDK's) that finds Warrant's
// authorization server, registers and gets its token BY ITSELF through an OAuthClientProvider.
// Nothing here hands the client a token: the test only plays the owner at the consent page.

export const OWNER = 'alice@example.com';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** What the client's own OAuth did, counted on its HTTP traffic and its provider's calls. */
export interface ClientCounters {
  registrations: number;
  authorizationRedirects: number;
  codeExchanges: number;
  refreshes: number;
  refreshFailures: number;
  /** 401s of the MCP endpoint to the client (an expired downstream token; each answered by a refresh). */
  endpoint401: number;
  tokensSaved: number;
}

/**
 * The SDK's OAuthClientProvider, as a native MCP client implements it: loopback redirect URI on a
 * port it listens on, registration, verifier and tokens kept in memory (a real client persists them).
 */
export class LoopbackOAuthClient implements OAuthClientProvider {
  readonly counters: ClientCounters = { registrations: 0, authorizationRedirects: 0, codeExchanges: 0, refreshes: 0, refreshFailures: 0, endpoint401: 0, tokensSaved: 0 };
  /** Every authorization URL the SDK sent the user to. */
  readonly authorizationUrls: URL[] = [];
  /** SEP-991: the https URL of the client's metadata document; the SDK then uses it as client_id instead of registering. */
  clientMetadataUrl?: string;
  private info?: OAuthClientInformationMixed;
  private stored?: OAuthTokens;
  private verifier?: string;
  private lastState?: string;
  private waiting?: { resolve(code: string): void; reject(err: Error): void };
  private constructor(
    private readonly server: HttpServer,
    readonly redirectUrl: string,
  ) {}

  static async start(): Promise<LoopbackOAuthClient> {
    let self: LoopbackOAuthClient | undefined;
    const server = createServer((req, res) => self!.callback(new URL(req.url ?? '/', self!.redirectUrl), res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    self = new LoopbackOAuthClient(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`);
    return self;
  }

  get clientMetadata(): OAuthClientMetadata {
    // `application_type` is RFC 7591/OIDC registration metadata the SDK's type does not list; it is sent as given.
    const metadata = {
      client_name: 'SDK OAuth e2e client',
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
    };
    return metadata;
  }
  state(): string {
    this.lastState = randomBytes(16).toString('base64url');
    return this.lastState;
  }
  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.info;
  }
  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.info = info;
  }
  tokens(): OAuthTokens | undefined {
    return this.stored;
  }
  saveTokens(tokens: OAuthTokens): void {
    this.counters.tokensSaved++;
    this.stored = tokens;
  }
  redirectToAuthorization(url: URL): void {
    this.counters.authorizationRedirects++;
    // A desktop client opens the system browser here; the caller plays the owner in it.
    this.authorizationUrls.push(url);
  }
  saveCodeVerifier(v: string): void {
    this.verifier = v;
  }
  codeVerifier(): string {
    if (!this.verifier) throw new Error('no code verifier saved');
    return this.verifier;
  }

  /** The next code delivered to the loopback redirect URI (with `state` checked), within `timeoutMs`. */
  nextCode(timeoutMs = 15_000): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no authorization response on the loopback redirect URI in time')), timeoutMs);
      this.waiting = {
        resolve: (c) => (clearTimeout(timer), resolve(c)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
    });
  }
  /** The `iss` of the last authorization response (RFC 9207). */
  lastIss?: string;

  private callback(url: URL, res: import('node:http').ServerResponse): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    const code = url.searchParams.get('code');
    this.lastIss = url.searchParams.get('iss') ?? undefined;
    if (url.pathname !== '/callback' || !waiting) return void res.writeHead(404).end();
    if (!code || url.searchParams.get('state') !== this.lastState) {
      res.writeHead(400).end('authorization failed');
      return waiting.reject(new Error(`authorization response without a code or with a wrong state: ${url.searchParams.get('error') ?? ''}`));
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('Signed in; you may close this window.');
    waiting.resolve(code);
  }

  /** A fetch for the transport (and so for the SDK's auth()): counts registration, token and endpoint traffic. */
  readonly fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input);
    const res = await fetch(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(30_000) });
    if (url.pathname === '/oauth2/register' && init?.method === 'POST') this.counters.registrations++;
    if (url.pathname === '/oauth2/token') {
      const grant = new URLSearchParams(init?.body instanceof URLSearchParams ? init.body : String(init?.body ?? '')).get('grant_type');
      if (grant === 'authorization_code') this.counters.codeExchanges++;
      if (grant === 'refresh_token') {
        this.counters.refreshes++;
        if (res.status !== 200) this.counters.refreshFailures++;
      }
    }
    if (url.pathname.startsWith('/mcp/') && res.status === 401) this.counters.endpoint401++;
    return res;
  };

  close(): Promise<void> {
    return new Promise<void>((r) => {
      this.server.close(() => r());
      this.server.closeAllConnections();
    });
  }
}

export interface Scene {
  sandbox: Sandbox;
  upstream: Awaited<ReturnType<typeof startUpstream>>;
  env: LifecycleEnv;
  base: string;
  endpoint: string;
  connectionId: string;
  close(): Promise<void>;
}

/** Sandbox (5 s rotating tokens) → upstream SDK server → Warrant with the server registered and connected by its owner. */
export async function startScene(opts: { downstreamAccessTokenTtl: number; upstreamAccessTokenTtl?: number }): Promise<Scene> {
  let sb: Sandbox | undefined;
  const upstream = await startUpstream(() => sb!);
  const sandbox = (sb = await startSandbox({ accessTokenTtl: opts.upstreamAccessTokenTtl ?? 5, rotateRefreshTokens: true, resources: [upstream.url] }));
  const env = await startLifecycle({ sharedSandbox: sandbox, env: { WARRANT_MCP_ALLOWED_NETWORKS: '127.0.0.0/8' }, authzTtl: { accessToken: opts.downstreamAccessTokenTtl } });
  const base = `http://127.0.0.1:${(env.warrant.app.server.address() as AddressInfo).port}`;
  const res = await env.warrant.app.inject({
    method: 'POST',
    url: '/v1/mcp-servers',
    headers: admin,
    payload: { url: upstream.url, name: 'up', client_id: sandboxDefaults.clientId, client_secret: sandboxDefaults.clientSecret },
  });
  if (res.statusCode !== 201) throw new Error(`registering the MCP server: ${res.statusCode} ${res.body}`);
  const connectionId = await env.connectTo('mcp-up', OWNER, ['items:read']);
  return {
    sandbox,
    upstream,
    env,
    base,
    endpoint: `${base}/mcp/up`,
    connectionId,
    async close() {
      await env.cleanup();
      await sandbox.close();
      await upstream.close();
    },
  };
}

/**
 * The client's first connection, as an MCP client does it: connect → 401 → the SDK discovers,
 * registers and sends the user to the authorization URL; the owner (played here) logs in and
 * approves; the browser lands on the loopback redirect URI; the SDK exchanges the code; connect again.
 */
export async function connectWithOwnOAuth(scene: Scene, oauthClient: LoopbackOAuthClient): Promise<{ client: Client; transport: StreamableHTTPClientTransport; pages: string[]; browser: Browser }> {
  const code = oauthClient.nextCode();
  code.catch(() => undefined);
  const first = new StreamableHTTPClientTransport(new URL(scene.endpoint), { authProvider: oauthClient, fetch: oauthClient.fetch });
  const initial = new Client({ name: 'sdk-oauth-e2e', version: '1' });
  const refused = await initial.connect(first).then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(refused instanceof UnauthorizedError)) throw new Error(`expected the SDK to stop for the user's authorization, got ${String(refused)}`);
  const url = oauthClient.authorizationUrls.at(-1);
  if (!url) throw new Error('the SDK did not send the user to an authorization URL');
  // The owner's browser: login code, consent, then back to the client's loopback redirect URI.
  const { callback, browser, pages } = await authorizeAsOwner(scene.base, url, OWNER);
  const delivered = await browser.request(callback.href);
  await delivered.body?.cancel();
  await first.finishAuth(await code);
  await first.close();
  const transport = new StreamableHTTPClientTransport(new URL(scene.endpoint), { authProvider: oauthClient, fetch: oauthClient.fetch });
  const client = new Client({ name: 'sdk-oauth-e2e', version: '1' });
  await client.connect(transport);
  return { client, transport, pages, browser };
}

export interface SessionReport {
  seconds: number;
  toolCalls: number;
  /** Tool calls that threw or came back isError, and transport errors: must be 0. */
  authFailures: number;
  failures: string[];
  clientReauthentications: number;
  upstreamRefreshes: number;
  upstreamRefreshFailures: number;
  upstreamReuseDetected: number;
  upstreamExpiries: number;
  /** Refreshes due: Warrant refreshes ahead, `refreshSkewFraction` of the lifetime before expiry (one per token it uses). */
  upstreamRefreshesDue: number;
  downstreamRefreshes: number;
  downstreamRefreshFailures: number;
  downstreamExpiries: number;
  endpoint401: number;
}

/** Tool calls every `intervalMs` for `durationMs` on one client session; counts what happened. */
export async function runSession(
  scene: Scene,
  oauthClient: LoopbackOAuthClient,
  client: Client,
  opts: { durationMs: number; intervalMs: number; upstreamTtlSeconds: number; downstreamTtlSeconds: number; onProgress?: (r: SessionReport) => void },
): Promise<SessionReport> {
  const authBefore = oauthClient.counters.authorizationRedirects;
  const refreshBefore = oauthClient.counters.refreshes;
  const refreshFailBefore = oauthClient.counters.refreshFailures;
  const e401Before = oauthClient.counters.endpoint401;
  scene.sandbox.resetStats();
  const failures: string[] = [];
  const started = Date.now();
  let calls = 0;
  let lastProgress = started;
  const report = (): SessionReport => {
    const seconds = (Date.now() - started) / 1000;
    const stats = scene.sandbox.stats();
    return {
      seconds: Math.round(seconds),
      toolCalls: calls,
      authFailures: failures.length,
      failures: failures.slice(0, 5),
      clientReauthentications: oauthClient.counters.authorizationRedirects - authBefore,
      upstreamRefreshes: stats.refreshRequests,
      upstreamRefreshFailures: stats.refreshFailures,
      upstreamReuseDetected: stats.reuseDetected,
      upstreamExpiries: Math.floor(seconds / opts.upstreamTtlSeconds),
      upstreamRefreshesDue: Math.floor(seconds / (opts.upstreamTtlSeconds * (1 - defaults.refreshSkewFraction))),
      downstreamRefreshes: oauthClient.counters.refreshes - refreshBefore,
      downstreamRefreshFailures: oauthClient.counters.refreshFailures - refreshFailBefore,
      downstreamExpiries: Math.floor(seconds / opts.downstreamTtlSeconds),
      endpoint401: oauthClient.counters.endpoint401 - e401Before,
    };
  };
  while (Date.now() - started < opts.durationMs) {
    const text = `n${calls}`;
    try {
      const r = (await client.callTool({ name: 'echo', arguments: { text } })) as CallToolResult;
      const got = (r.content[0] as { text?: string } | undefined)?.text;
      if (r.isError === true || got !== `echo: ${text}`) failures.push(`call ${calls}: ${JSON.stringify(r).slice(0, 300)}`);
    } catch (err) {
      failures.push(`call ${calls}: ${(err as Error).message.slice(0, 300)}`);
    }
    calls++;
    if (opts.onProgress && Date.now() - lastProgress >= 10_000) {
      lastProgress = Date.now();
      opts.onProgress(report());
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs));
  }
  return report();
}

/** The claims of a JWT (no verification: the test reads what the client stored). */
export function claimsOf(jwt: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [h, p] = jwt.split('.');
  return { header: JSON.parse(Buffer.from(h!, 'base64url').toString()), payload: JSON.parse(Buffer.from(p!, 'base64url').toString()) };
}
