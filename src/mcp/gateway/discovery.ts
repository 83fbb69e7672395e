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
  /** Absent only at an authorization server taken for client credentials alone (a machine grant). */
  authorization_endpoint?: string;
  token_endpoint: string;
  registration_endpoint?: string;
  revocation_endpoint?: string;
  introspection_endpoint?: string;
  scopes_supported?: string[];
  code_challenge_methods_supported?: string[];
  authorization_response_iss_parameter_supported?: boolean;
  token_endpoint_auth_methods_supported?: string[];
  /** draft-ietf-oauth-client-id-metadata-document: a client may use an https URL as its client_id. */
  client_id_metadata_document_supported?: boolean;
  /** RFC 8414 §2 (default `authorization_code`, `implicit`). */
  grant_types_supported?: string[];
  /** RFC 8414 §2: the algorithms a `private_key_jwt` assertion may be signed with. */
  token_endpoint_auth_signing_alg_values_supported?: string[];
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

/** The auth-params of a `WWW-Authenticate: Bearer …` challenge (RFC 6750 §3), lower-cased names. */
export function bearerParams(challenge: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!challenge || !/^\s*bearer\b/i.test(challenge)) return out;
  for (const m of challenge.replace(/^\s*bearer\s*/i, '').matchAll(/([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    out[m[1]!.toLowerCase()] ??= m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
  }
  return out;
}

/** RFC 9728 §5.1: the `resource_metadata` of a 401's `WWW-Authenticate: Bearer …`. */
export function resourceMetadataOf(challenge: string | null): string | undefined {
  return bearerParams(challenge).resource_metadata;
}

/** RFC 6750 §3 `scope` of a challenge, as a list; undefined when absent or empty. */
export function scopesOf(challenge: string | null): string[] | undefined {
  const scopes = bearerParams(challenge).scope?.split(' ').filter(Boolean);
  return scopes?.length ? scopes : undefined;
}

const sameUrl = (a: string, b: string) => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');

/** What the server says of its auth before Warrant holds a token. */
export interface ServerDiscovery {
  /** Its RFC 9728 document; undefined for a 2025-03-26 server that publishes none. */
  resource?: ProtectedResourceMetadata;
  /** The `scope` of its 401 challenge (MCP scope selection: first choice). */
  challengeScopes?: string[];
}

/**
 * The server's auth, as an MCP client finds it (MCP 2025-11-25 "Authorization server discovery"):
 * an unauthenticated request first, whose 401 may name the metadata (`resource_metadata`) and the
 * scope; else RFC 9728 §3.1 well-known addresses, path-based then at the root. A document's
 * `resource` must be the identifier it was looked up for (§3.3): the server's URL (path-based, or
 * the 401's pointer), its origin (root); a document naming another resource is refused, never
 * skipped (it would let one server speak for another). No document at all: a 2025-03-26 server.
 */
export async function discoverResource(guard: GuardedFetch, serverUrl: string): Promise<ServerDiscovery> {
  const probe = await guard.json('url', serverUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  const challenge = probe.status === 401 ? probe.headers.get('www-authenticate') : null;
  const challengeScopes = scopesOf(challenge);
  const origin = new URL(serverUrl).origin;
  const candidates: { url: string; identifier: string }[] = [];
  const pointer = resourceMetadataOf(challenge);
  if (pointer) {
    if (!URL.canParse(pointer) || new URL(pointer).origin !== origin) throw invalidRequest('url', 'the 401 challenge points at metadata on another origin');
    candidates.push({ url: pointer, identifier: serverUrl });
  }
  candidates.push({ url: protectedResourceMetadataUrl(serverUrl), identifier: serverUrl });
  if (new URL(serverUrl).pathname !== '/') candidates.push({ url: protectedResourceMetadataUrl(origin), identifier: origin });
  for (const { url, identifier } of candidates) {
    const answer = await guard.json('url', url);
    if (answer.status !== 200 || !isObject(answer.body)) continue;
    const b = answer.body;
    if (typeof b.resource !== 'string') throw invalidRequest('url', 'the protected resource metadata is not an RFC 9728 document');
    if (!sameUrl(b.resource, identifier)) throw invalidRequest('url', `the protected resource metadata names another resource (${b.resource.slice(0, 200)})`);
    const servers = strings(b.authorization_servers);
    if (!servers?.length) throw invalidRequest('url', 'the protected resource metadata names no authorization server');
    return { resource: { resource: b.resource, authorization_servers: servers, scopes_supported: strings(b.scopes_supported) }, challengeScopes };
  }
  // MCP 2025-03-26 had no RFC 9728: only a server that asks for a token at all is taken for one.
  if (probe.status !== 401) throw invalidRequest('url', 'the server publishes no RFC 9728 protected resource metadata (neither in a 401 challenge nor at its well-known addresses)');
  return { challengeScopes };
}

/**
 * What the grant needs of the authorization server: `code` (the owner's consent: an authorization
 * endpoint and PKCE S256) or `machine` (client credentials, SEP-1046: a token endpoint only).
 */
export type GrantNeeds = 'code' | 'machine';

/** One AS metadata document, checked; `expectedIssuer` undefined: any issuer on `sameOriginAs`. */
function checkedMetadata(guard: GuardedFetch, b: Record<string, unknown>, expected: { issuer?: string; sameOriginAs?: string }, needs: GrantNeeds = 'code'): AuthorizationServerMetadata {
  // RFC 8414 §3.3: the issuer in the document is the one asked for (mix-up defence).
  if (typeof b.issuer !== 'string' || !URL.canParse(b.issuer)) throw invalidRequest('url', 'the authorization server metadata has no issuer');
  if (expected.issuer !== undefined && !sameUrl(b.issuer, expected.issuer)) throw invalidRequest('url', 'the authorization server metadata names another issuer');
  if (expected.sameOriginAs !== undefined && new URL(b.issuer).origin !== new URL(expected.sameOriginAs).origin) throw invalidRequest('url', "the server's authorization server metadata names an issuer on another origin");
  for (const k of needs === 'code' ? (['authorization_endpoint', 'token_endpoint'] as const) : (['token_endpoint'] as const)) {
    if (typeof b[k] !== 'string') throw invalidRequest('url', `the authorization server metadata has no ${k}`);
  }
  for (const k of ['authorization_endpoint', 'token_endpoint', 'registration_endpoint', 'revocation_endpoint', 'introspection_endpoint'] as const) {
    if (b[k] === undefined) continue;
    const problem = typeof b[k] === 'string' && URL.canParse(b[k]) ? guard.schemeProblem(new URL(b[k])) : 'is not a URL';
    if (problem) throw invalidRequest('url', `the authorization server's ${k} ${problem}`);
  }
  const methods = strings(b.code_challenge_methods_supported);
  // MCP authorization: PKCE S256 is required; a server that does not say it supports it is refused.
  // A client credentials grant has no authorization request, so nothing to protect with PKCE.
  if (needs === 'code' && !methods?.includes('S256')) throw invalidRequest('url', 'the authorization server does not advertise PKCE S256 (code_challenge_methods_supported)');
  return {
    issuer: b.issuer,
    authorization_endpoint: typeof b.authorization_endpoint === 'string' ? b.authorization_endpoint : undefined,
    token_endpoint: b.token_endpoint as string,
    registration_endpoint: typeof b.registration_endpoint === 'string' ? b.registration_endpoint : undefined,
    revocation_endpoint: typeof b.revocation_endpoint === 'string' ? b.revocation_endpoint : undefined,
    introspection_endpoint: typeof b.introspection_endpoint === 'string' ? b.introspection_endpoint : undefined,
    scopes_supported: strings(b.scopes_supported),
    code_challenge_methods_supported: methods,
    authorization_response_iss_parameter_supported: b.authorization_response_iss_parameter_supported === true,
    token_endpoint_auth_methods_supported: strings(b.token_endpoint_auth_methods_supported),
    client_id_metadata_document_supported: b.client_id_metadata_document_supported === true,
    grant_types_supported: strings(b.grant_types_supported),
    token_endpoint_auth_signing_alg_values_supported: strings(b.token_endpoint_auth_signing_alg_values_supported),
  };
}

/**
 * RFC 8414 §3.1 and OpenID Connect Discovery, in the order of MCP 2025-11-25: for an issuer with
 * a path, `/.well-known/oauth-authorization-server{path}`, `/.well-known/openid-configuration{path}`,
 * `{path}/.well-known/openid-configuration`; without one, the first two at the root.
 */
export async function discoverAuthorizationServer(guard: GuardedFetch, issuer: string, needs: GrantNeeds = 'code'): Promise<AuthorizationServerMetadata> {
  const u = new URL(issuer);
  const path = u.pathname === '/' ? '' : u.pathname.replace(/\/+$/, '');
  const candidates = path
    ? [`${u.origin}/.well-known/oauth-authorization-server${path}`, `${u.origin}/.well-known/openid-configuration${path}`, `${u.origin}${path}/.well-known/openid-configuration`]
    : [`${u.origin}/.well-known/oauth-authorization-server`, `${u.origin}/.well-known/openid-configuration`];
  for (const url of candidates) {
    const answer = await guard.json('url', url);
    if (answer.status !== 200 || !isObject(answer.body)) continue;
    return checkedMetadata(guard, answer.body, { issuer }, needs);
  }
  throw invalidRequest('url', `the authorization server ${issuer.slice(0, 200)} publishes no RFC 8414 or OpenID metadata`);
}

/**
 * MCP 2025-03-26 (a server without RFC 9728 metadata): the authorization server is the server's
 * origin. Its RFC 8414 document there is taken with the issuer it names as long as that is on the
 * same origin (the server speaks for itself; the suffix was not built from an issuer Warrant knew);
 * without one, the spec's default endpoints `/authorize`, `/token` and `/register` at the origin.
 */
export async function discoverLegacyAuthorizationServer(guard: GuardedFetch, serverUrl: string, needs: GrantNeeds = 'code'): Promise<{ as: AuthorizationServerMetadata; fallback: boolean }> {
  const origin = new URL(serverUrl).origin;
  const answer = await guard.json('url', `${origin}/.well-known/oauth-authorization-server`);
  if (answer.status === 200 && isObject(answer.body)) return { as: checkedMetadata(guard, answer.body, { sameOriginAs: origin }, needs), fallback: false };
  return {
    fallback: true,
    as: {
      issuer: origin,
      authorization_endpoint: `${origin}/authorize`,
      token_endpoint: `${origin}/token`,
      registration_endpoint: `${origin}/register`,
      // 2025-03-26 makes PKCE mandatory for every MCP client and server.
      code_challenge_methods_supported: ['S256'],
    },
  };
}

/**
 * How Warrant authenticates at the token endpoint, from what the server supports (RFC 8414
 * `token_endpoint_auth_methods_supported`, whose default is client_secret_basic): basic, then post,
 * with a secret; none without.
 */
export function tokenAuthMethodFor(as: AuthorizationServerMetadata, hasSecret: boolean): 'client_secret_basic' | 'client_secret_post' | 'none' {
  const supported = as.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
  if (!hasSecret) return 'none';
  if (supported.includes('client_secret_basic')) return 'client_secret_basic';
  if (supported.includes('client_secret_post')) return 'client_secret_post';
  return 'client_secret_basic';
}

/** What Warrant asks to be registered with (RFC 7591 §2): a confidential client where the server takes one. */
function registrationAuthMethod(as: AuthorizationServerMetadata): string {
  const supported = as.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
  return ['client_secret_basic', 'client_secret_post', 'none'].find((m) => supported.includes(m)) ?? 'client_secret_basic';
}

/** RFC 7591: registers Warrant as a client of the server's authorization server. */
export async function registerClient(
  guard: GuardedFetch,
  as: AuthorizationServerMetadata,
  p: { redirectUri: string; clientName: string; scope?: string },
): Promise<{ client_id: string; client_secret?: string; token_endpoint_auth_method: string }> {
  if (!as.registration_endpoint) throw invalidRequest('client_id', 'the authorization server has no registration endpoint; give a pre-registered client_id (and client_secret)');
  const asked = registrationAuthMethod(as);
  const answer = await guard.json('url', as.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: p.clientName,
      redirect_uris: [p.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      application_type: 'web',
      token_endpoint_auth_method: asked,
      ...(p.scope ? { scope: p.scope } : {}),
    }),
  });
  const b = answer.body;
  if (answer.status !== 201 && answer.status !== 200) {
    const error = isObject(b) && typeof b.error === 'string' ? b.error.slice(0, 64) : `status ${answer.status}`;
    throw new WarrantError('upstream_unavailable', `dynamic client registration at the authorization server failed (${error})`);
  }
  if (!isObject(b) || typeof b.client_id !== 'string' || !b.client_id) throw new WarrantError('upstream_unavailable', 'dynamic client registration answered without a client_id');
  // RFC 7591 §3.2.1: the answer holds the registered metadata; a method left out is the one asked for.
  const said = typeof b.token_endpoint_auth_method === 'string' ? b.token_endpoint_auth_method : undefined;
  const secret = typeof b.client_secret === 'string' && b.client_secret ? b.client_secret : undefined;
  const method = said ?? (asked === 'none' || !secret ? 'none' : asked);
  // A public client keeps no secret, even one the server sent anyway.
  return { client_id: b.client_id, ...(secret && method !== 'none' ? { client_secret: secret } : {}), token_endpoint_auth_method: method };
}
