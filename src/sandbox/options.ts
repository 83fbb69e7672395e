import { z } from 'zod';

// Every knob of the sandbox and its default, in one place (seconds unless the name says ms).

export interface SandboxClient {
  client_id: string;
  client_secret?: string;
  /** Omitted: any http(s) redirect URI on a loopback host (127.0.0.1, localhost, [::1]) is accepted. */
  redirect_uris?: string[];
  grant_types?: string[];
  token_endpoint_auth_method?: string;
  scope?: string;
}

/** An RFC 7523 service account: a public client whose key signs the JWT bearer assertions it presents. */
export interface SandboxServiceAccount {
  /** The assertion's `iss` and the token request's client_id (Google: the service account e-mail). */
  client_id: string;
  /** SPKI PEM (`-----BEGIN PUBLIC KEY-----`) of an RSA or EC P-256 key. */
  publicKeyPem: string;
  /** Scopes it may be granted (space-separated); default every API scope (items:read items:write). */
  scope?: string;
}

export interface SandboxOptions {
  /** Loopback address to listen on. Default 127.0.0.1. */
  host?: string;
  /** 0 = ephemeral. The IdP (`/oauth/*`) and the API (`/api/*`) share this one port. */
  port?: number;
  /** Access-token lifetime in seconds (also client-credentials tokens). Default 3600. */
  accessTokenTtl?: number;
  /** Refresh-token lifetime in seconds; also the absolute lifetime of a grant. Default 30 days. */
  refreshTokenTtl?: number;
  /** Rotate refresh tokens; reuse of a consumed one revokes the whole grant. Default true. */
  rotateRefreshTokens?: boolean;
  /** Clients added to (or, with the same client_id, replacing) the default `warrant` client. */
  clients?: SandboxClient[];
  /** RFC 7523 service accounts known from the start; `sandbox.addServiceAccount` adds more with a
   *  generated key pair. */
  serviceAccounts?: SandboxServiceAccount[];
  /** Scopes the IdP knows besides `openid`. Default items:read, items:write, offline_access. */
  scopes?: string[];
  /** A browser reaching the interaction page is approved at once as `sandbox-user`. Default true;
   *  false shows a page with Approve / Deny buttons. */
  autoApprove?: boolean;
  /** One line per notable event; tokens and secrets are never in it. Default: silent. */
  logger?: (line: string) => void;
  /** Seconds added to the time in every answer's `Date` header (a skewed IdP clock, for `warrant doctor`). Default 0. */
  clockSkewSeconds?: number;
  /** More RFC 8707 resource indicators the IdP issues (opaque) tokens for, besides the API (a test's own resource server). Default none. */
  resources?: string[];
}

export const sandboxDefaults = Object.freeze({
  host: '127.0.0.1',
  port: 0,
  accessTokenTtlSeconds: 3600,
  refreshTokenTtlSeconds: 30 * 24 * 3600,
  rotateRefreshTokens: true,
  autoApprove: true,
  scopes: Object.freeze(['items:read', 'items:write', 'offline_access']),
  clientId: 'warrant',
  /** A fixed development secret: the sandbox is a loopback test double, this is not a credential. */
  clientSecret: 'warrant-sandbox-secret',
  accountId: 'sandbox-user',
  /** Path prefixes on the one port. */
  idpPath: '/oauth',
  apiPath: '/api',
  controlPath: '/_sandbox',
  authorizationCodeTtlSeconds: 60,
  interactionTtlSeconds: 600,
});

/** Scopes the API enforces, and what each one opens (the provider definition says the same). */
export const apiScopes = Object.freeze({ read: 'items:read', write: 'items:write' });

export interface ResolvedOptions {
  host: string;
  port: number;
  accessTokenTtl: number;
  refreshTokenTtl: number;
  rotateRefreshTokens: boolean;
  autoApprove: boolean;
  scopes: string[];
  clients: SandboxClient[];
  serviceAccounts: SandboxServiceAccount[];
  /** Clients registered without redirect_uris: any loopback redirect URI is theirs. */
  loopbackRedirectClients: Set<string>;
  clockSkewSeconds: number;
  resources: string[];
  log: (line: string) => void;
}

const ttl = z.number().int().positive();
const optionsSchema = z.object({
  host: z.string().min(1).optional(),
  port: z.number().int().min(0).max(65535).optional(),
  accessTokenTtl: ttl.optional(),
  refreshTokenTtl: ttl.optional(),
  rotateRefreshTokens: z.boolean().optional(),
  autoApprove: z.boolean().optional(),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, { message: 'a scope token (RFC 6749 §3.3)' })).optional(),
  clients: z
    .array(
      z.object({
        client_id: z.string().min(1),
        client_secret: z.string().min(1).optional(),
        redirect_uris: z.array(z.url()).optional(),
        grant_types: z.array(z.string().min(1)).optional(),
        token_endpoint_auth_method: z.string().min(1).optional(),
        scope: z.string().optional(),
      }),
    )
    .optional(),
  serviceAccounts: z
    .array(z.object({ client_id: z.string().min(1), publicKeyPem: z.string().min(1), scope: z.string().optional() }))
    .optional(),
  clockSkewSeconds: z.number().int().optional(),
  resources: z.array(z.url()).optional(),
});

/** Placeholder registered for loopback-redirect clients; oidc-provider wants at least one URI. */
export const loopbackPlaceholderRedirect = 'http://127.0.0.1/callback';

export function resolveOptions(opts: SandboxOptions = {}): ResolvedOptions {
  const parsed = optionsSchema.safeParse({ ...opts, logger: undefined });
  if (!parsed.success) {
    throw new TypeError(`invalid sandbox options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const o = parsed.data;
  const scopes = [...new Set(o.scopes ?? sandboxDefaults.scopes)];
  const defaultClient: SandboxClient = {
    client_id: sandboxDefaults.clientId,
    client_secret: sandboxDefaults.clientSecret,
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: ['openid', ...scopes].join(' '),
  };
  const clients = new Map<string, SandboxClient>([[defaultClient.client_id, defaultClient]]);
  for (const c of o.clients ?? []) clients.set(c.client_id, c);
  const loopbackRedirectClients = new Set([...clients.values()].filter((c) => !c.redirect_uris).map((c) => c.client_id));
  const logger = opts.logger;
  return {
    host: o.host ?? sandboxDefaults.host,
    port: o.port ?? sandboxDefaults.port,
    accessTokenTtl: o.accessTokenTtl ?? sandboxDefaults.accessTokenTtlSeconds,
    refreshTokenTtl: o.refreshTokenTtl ?? sandboxDefaults.refreshTokenTtlSeconds,
    rotateRefreshTokens: o.rotateRefreshTokens ?? sandboxDefaults.rotateRefreshTokens,
    autoApprove: o.autoApprove ?? sandboxDefaults.autoApprove,
    scopes,
    clients: [...clients.values()],
    serviceAccounts: o.serviceAccounts ?? [],
    loopbackRedirectClients,
    clockSkewSeconds: o.clockSkewSeconds ?? 0,
    resources: o.resources ?? [],
    log: (line) => logger?.(`sandbox: ${line}`),
  };
}

/** A URL on a loopback host, the only redirect targets a loopback-redirect client may use. */
export function isLoopbackUrl(value: string): boolean {
  const url = URL.parse(value);
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) return false;
  if (url.username || url.password || url.hash) return false;
  return url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
}
