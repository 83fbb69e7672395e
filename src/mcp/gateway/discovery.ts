import { Agent, fetch as undiciFetch } from 'undici';
import { WarrantError, invalidRequest } from '../../errors/index.ts';
import { createWebhookTarget } from '../../events/webhook-target.ts';
import { isLoopbackHost } from '../../config/index.ts';
import { readCapped } from '../../oauth/index.ts';

// How Warrant learns a remote MCP server's auth, every request through one SSRF guard: the URL an
// admin registers, its metadata, and the authorization server that metadata names are all chosen
// by others yet fetched from Warrant's network position. So: http(s) only, plain http only to a
// loopback host (or with WARRANT_ALLOW_INSECURE_HTTP), every address connected to public unless its
// network is allowed (WARRANT_MCP_ALLOWED_NETWORKS; checked on the socket, so DNS rebinding does
// not help), no redirects followed, each answer capped in size and time.

/** No metadata document Warrant reads is larger. */
export const MAX_METADATA_BYTES = 64 << 10;

export interface GuardOptions {
  allowedNetworks: readonly string[];
  allowInsecureHttp: boolean;
  timeoutMs: number;
}

export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported?: string[];
}

export interface AuthorizationServerMetadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  registration_endpoint?: string;
  revocation_endpoint?: string;
  introspection_endpoint?: string;
  scopes_supported?: string[];
  code_challenge_methods_supported?: string[];
  authorization_response_iss_parameter_supported?: boolean;
  token_endpoint_auth_methods_supported?: string[];
}

export function createGuardedFetch(opts: GuardOptions) {
  const target = createWebhookTarget({ allowedNetworks: opts.allowedNetworks });
  const dispatcher = new Agent({ connect: target.connector({ timeout: opts.timeoutMs }), headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs });

  /** Why `url` may not be reached (scheme, plain http off loopback), or undefined. */
  function schemeProblem(url: URL): string | undefined {
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'is not an http(s) URL';
    if (url.username || url.password) return 'carries credentials';
    if (url.hash) return 'has a fragment';
    if (url.protocol === 'http:' && !isLoopbackHost(url.hostname) && !opts.allowInsecureHttp) return 'is plain http on a non-loopback host';
    return undefined;
  }

  /** fetch through the guard: no redirect followed, refused addresses fail the connection. */
  const guarded = (async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const problem = schemeProblem(url);
    if (problem) throw new TypeError(`refused: the URL ${problem}`);
    return undiciFetch(input as never, { ...(init as object), redirect: 'manual', dispatcher } as never) as unknown as Response;
  }) as typeof fetch;

  /** GET (or POST) a JSON document, capped in size and time. Fails as `invalid_request` naming `field`. */
  async function json(field: string, url: string, init: RequestInit = {}): Promise<{ status: number; body: unknown; headers: Headers }> {
    let res: Response;
    try {
      res = await guarded(url, { ...init, headers: { accept: 'application/json', ...(init.headers as Record<string, string>) }, signal: AbortSignal.timeout(opts.timeoutMs) });
    } catch (err) {
      const msg = (err as Error).message.startsWith('refused:') ? (err as Error).message.slice(9) : `could not be fetched (${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name})`;
      throw invalidRequest(field, `${new URL(url).origin}${new URL(url).pathname} ${msg}`);
    }
    const { bytes, overflow } = await readCapped(res, MAX_METADATA_BYTES);
    if (overflow) throw invalidRequest(field, `the answer of ${new URL(url).pathname} is larger than ${MAX_METADATA_BYTES} bytes`);
    let body: unknown;
    try {
      body = bytes.length ? JSON.parse(Buffer.from(bytes).toString('utf8')) : undefined;
    } catch {
      body = undefined;
    }
    return { status: res.status, body, headers: res.headers };
  }

  return { fetch: guarded, json, schemeProblem, close: () => dispatcher.close() };
}

export type GuardedFetch = ReturnType<typeof createGuardedFetch>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown) => (Array.isArray(v) && v.every((s) => typeof s === 'string') ? (v as string[]) : undefined);

/** RFC 9728 §3.1: the well-known suffix goes between the host and the resource's path. */
export function protectedResourceMetadataUrl(resource: string): string {
  const u = new URL(resource);
  const path = u.pathname === '/' ? '' : u.pathname.replace(/\/+$/, '');
  return `${u.origin}/.well-known/oauth-protected-resource${path}`;
}

/** RFC 9728 §5.1: the `resource_metadata` of a 401's `WWW-Authenticate: Bearer …`. */
export function resourceMetadataOf(challenge: string | null): string | undefined {
  return challenge ? /resource_metadata="([^"]+)"/i.exec(challenge)?.[1] : undefined;
}

const sameUrl = (a: string, b: string) => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');

/**
 * The server's RFC 9728 metadata: at its well-known address, else where a 401 of the server
 * itself points (`resource_metadata`). `resource` must be the server's URL (RFC 9728 §3.3): a
 * document naming another resource is refused (it would let one server speak for another).
 */
export async function discoverResource(guard: GuardedFetch, serverUrl: string): Promise<ProtectedResourceMetadata> {
  let answer = await guard.json('url', protectedResourceMetadataUrl(serverUrl));
  if (answer.status !== 200) {
    const probe = await guard.json('url', serverUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    const pointer = probe.status === 401 ? resourceMetadataOf(probe.headers.get('www-authenticate')) : undefined;
    if (!pointer) throw invalidRequest('url', 'the server publishes no RFC 9728 protected resource metadata (neither at its well-known address nor in a 401 challenge)');
    const p = new URL(pointer);
    if (p.origin !== new URL(serverUrl).origin) throw invalidRequest('url', 'the 401 challenge points at metadata on another origin');
    answer = await guard.json('url', pointer);
  }
  const b = answer.body;
  if (answer.status !== 200 || !isObject(b) || typeof b.resource !== 'string') throw invalidRequest('url', 'the protected resource metadata is not an RFC 9728 document');
  if (!sameUrl(b.resource, serverUrl)) throw invalidRequest('url', `the protected resource metadata names another resource (${b.resource.slice(0, 200)})`);
  const servers = strings(b.authorization_servers);
  if (!servers?.length) throw invalidRequest('url', 'the protected resource metadata names no authorization server');
  return { resource: b.resource, authorization_servers: servers, scopes_supported: strings(b.scopes_supported) };
}

/** RFC 8414 §3.1 (suffix inserted before the issuer's path), then OpenID Connect Discovery (appended). */
export async function discoverAuthorizationServer(guard: GuardedFetch, issuer: string): Promise<AuthorizationServerMetadata> {
  const u = new URL(issuer);
  const path = u.pathname === '/' ? '' : u.pathname.replace(/\/+$/, '');
  const candidates = [`${u.origin}/.well-known/oauth-authorization-server${path}`, `${u.origin}${path}/.well-known/openid-configuration`];
  for (const url of candidates) {
    const answer = await guard.json('url', url);
    if (answer.status !== 200 || !isObject(answer.body)) continue;
    const b = answer.body;
    // RFC 8414 §3.3: the issuer in the document is the one asked for (mix-up defence).
    if (typeof b.issuer !== 'string' || !sameUrl(b.issuer, issuer)) throw invalidRequest('url', 'the authorization server metadata names another issuer');
    for (const k of ['authorization_endpoint', 'token_endpoint'] as const) {
      if (typeof b[k] !== 'string') throw invalidRequest('url', `the authorization server metadata has no ${k}`);
    }
    for (const k of ['authorization_endpoint', 'token_endpoint', 'registration_endpoint', 'revocation_endpoint', 'introspection_endpoint'] as const) {
      if (b[k] === undefined) continue;
      const problem = typeof b[k] === 'string' && URL.canParse(b[k]) ? guard.schemeProblem(new URL(b[k])) : 'is not a URL';
      if (problem) throw invalidRequest('url', `the authorization server's ${k} ${problem}`);
    }
    const methods = strings(b.code_challenge_methods_supported);
    // MCP authorization: PKCE S256 is required; a server that does not say it supports it is refused.
    if (!methods?.includes('S256')) throw invalidRequest('url', 'the authorization server does not advertise PKCE S256 (code_challenge_methods_supported)');
    return {
      issuer: b.issuer,
      authorization_endpoint: b.authorization_endpoint as string,
      token_endpoint: b.token_endpoint as string,
      registration_endpoint: typeof b.registration_endpoint === 'string' ? b.registration_endpoint : undefined,
      revocation_endpoint: typeof b.revocation_endpoint === 'string' ? b.revocation_endpoint : undefined,
      introspection_endpoint: typeof b.introspection_endpoint === 'string' ? b.introspection_endpoint : undefined,
      scopes_supported: strings(b.scopes_supported),
      code_challenge_methods_supported: methods,
      authorization_response_iss_parameter_supported: b.authorization_response_iss_parameter_supported === true,
      token_endpoint_auth_methods_supported: strings(b.token_endpoint_auth_methods_supported),
    };
  }
  throw invalidRequest('url', `the authorization server ${issuer.slice(0, 200)} publishes no RFC 8414 or OpenID metadata`);
}

/** RFC 7591: registers Warrant as a client of the server's authorization server. */
export async function registerClient(
  guard: GuardedFetch,
  as: AuthorizationServerMetadata,
  p: { redirectUri: string; clientName: string; scope?: string },
): Promise<{ client_id: string; client_secret?: string; token_endpoint_auth_method: string }> {
  if (!as.registration_endpoint) throw invalidRequest('client_id', 'the authorization server has no registration endpoint; give a pre-registered client_id (and client_secret)');
  const answer = await guard.json('url', as.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: p.clientName,
      redirect_uris: [p.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      application_type: 'web',
      token_endpoint_auth_method: 'client_secret_basic',
      ...(p.scope ? { scope: p.scope } : {}),
    }),
  });
  const b = answer.body;
  if (answer.status !== 201 && answer.status !== 200) {
    const error = isObject(b) && typeof b.error === 'string' ? b.error.slice(0, 64) : `status ${answer.status}`;
    throw new WarrantError('upstream_unavailable', `dynamic client registration at the authorization server failed (${error})`);
  }
  if (!isObject(b) || typeof b.client_id !== 'string' || !b.client_id) throw new WarrantError('upstream_unavailable', 'dynamic client registration answered without a client_id');
  const method = typeof b.token_endpoint_auth_method === 'string' ? b.token_endpoint_auth_method : typeof b.client_secret === 'string' ? 'client_secret_basic' : 'none';
  return { client_id: b.client_id, ...(typeof b.client_secret === 'string' ? { client_secret: b.client_secret } : {}), token_endpoint_auth_method: method };
}
