import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApiHandler } from './api.ts';
import { followAuthorization, type AuthorizeParams } from './authorize.ts';
import { createControlHandler } from './control.ts';
import { buildProviderDefinition, buildServiceAccountDefinition } from './definition.ts';
import { createFaultState, type SandboxFaults } from './faults.ts';
import { delay, readBody, sendJson } from './http.ts';
import { createIdp, invalidateAccessToken, resourceScopes, revokeGrantOf, type Idp } from './idp.ts';
import { countLive, expireAccessTokens, revokeGrants, type RevokeOutcome, type RevokeTarget } from './bulk.ts';
import { createOutageState, type OutageView } from './outage.ts';
import { createInteractionHandler } from './interaction.ts';
import { resolveOptions, sandboxDefaults, type SandboxOptions } from './options.ts';
import { countTokenRequest, emptyStats, type SandboxStats } from './stats.ts';
import type { ServiceAccountKey } from './jwt-bearer.ts';
import type { ProviderInput } from '../providers/index.ts';
import { attachPersona, resolvePersona, type PersonaOption, type SandboxPersona } from './personas/attach.ts';
import type { PersonaStats } from './personas/index.ts';

export interface Sandbox {
  /** The IdP issuer, `http://HOST:PORT/oauth`. */
  issuer: string;
  /** The API base, `http://HOST:PORT/api`. */
  apiBaseUrl: string;
  /** The HTTP control base, `http://HOST:PORT/_sandbox`. */
  controlUrl: string;
  /** A Warrant provider definition pointing at this sandbox; passes `providerSchema.parse`. */
  providerDefinition(id?: string): ProviderInput;
  /**
   * Registers an RFC 7523 service account (a public client allowed the JWT bearer grant) with a
   * fresh RSA-2048 key pair. `scope` (space-separated) is what it may be granted, default every API
   * scope. Rejects when the client_id is taken.
   */
  addServiceAccount(account: { client_id: string; scope?: string }): Promise<ServiceAccountKey>;
  /**
   * Uploads another public key (SPKI PEM) to a service account, as an admin does during a key
   * rotation (Warrant shows the new public key: `warrant rotate --public-key`); both keys work
   * until `removeServiceAccountKey` deletes the old one.
   */
  addServiceAccountKey(clientId: string, publicKeyPem: string): void;
  /** Deletes one key of a service account; assertions signed with it get invalid_grant from then on. */
  removeServiceAccountKey(clientId: string, publicKeyPem: string): void;
  /** A Warrant `auth: jwt_bearer` definition for a registered service account; passes `providerSchema.parse`. */
  serviceAccountDefinition(id: string, clientId: string): ProviderInput;
  /** With a persona, its counters too (`persona`). */
  stats(): SandboxStats & { persona?: PersonaStats };
  resetStats(): void;
  /** Replaces every injected fault (`{}` clears); `count` restarts from the new value. */
  setFaults(f: SandboxFaults): void;
  /** Applies to tokens issued afterwards. */
  setAccessTokenTtl(seconds: number): void;
  /** Kills the grant behind an access or refresh token (a password reset, an admin revoking the
   *  app): refresh then gives invalid_grant and the API 401. Rejects when the token is unknown. */
  revokeGrantOf(token: string): Promise<void>;
  /** Kills one access token before its expiry; the grant and its refresh token stay valid. */
  invalidateAccessToken(token: string): Promise<void>;
  /** Revokes every grant of one sandbox user, or of everyone (then client-credentials tokens too),
   *  without holding any of their tokens: refresh then gives invalid_grant and the API 401. */
  revokeGrants(target: RevokeTarget): Promise<RevokeOutcome>;
  /** Every access token issued so far expires now (the API answers 401); refresh still works. */
  expireAccessTokens(): number;
  /** The token endpoint (and with `api` the API) answers 503 for `seconds`, then heals; 0 ends it. */
  startOutage(seconds: number, opts?: { api?: boolean }): OutageView;
  /** Stats, current faults and outage, token lifetime, live grants and tokens. */
  status(): SandboxStatus;
  /** Non-interactive consent: runs /auth and the interaction over HTTP, returns the redirect URL. */
  authorize(params: AuthorizeParams): Promise<string>;
  /** Present when started with `persona`: the provider it plays and its own knobs (personas/attach.ts). */
  persona?: SandboxPersona;
  close(): Promise<void>;
}

export interface SandboxStatus {
  accessTokenTtl: number;
  outage: OutageView;
  faults: SandboxFaults;
  /** Grants, unexpired access tokens (client-credentials ones included), unused refresh tokens. */
  live: { grants: number; accessTokens: number; refreshTokens: number };
  stats: SandboxStats & { persona?: PersonaStats };
}

function hostForUrl(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** Starts the IdP and the API on one loopback port. */
export async function startSandbox(opts: SandboxOptions & PersonaOption = {}): Promise<Sandbox> {
  const options = resolveOptions(opts);
  const personaSpec = resolvePersona(opts.persona);
  const { log } = options;
  const stats = emptyStats();
  const faults = createFaultState();
  const outage = createOutageState();
  const lifetimes = { accessTokenTtl: options.accessTokenTtl };
  const closing = new AbortController();

  let handler: (req: IncomingMessage, res: ServerResponse) => Promise<void> = async (_req, res) => {
    sendJson(res, 503, { error: 'starting' });
  };
  const server = createServer((req, res) => {
    // Set before anything is written, so Node does not add its own (true) Date.
    if (options.clockSkewSeconds) res.setHeader('date', new Date(Date.now() + options.clockSkewSeconds * 1000).toUTCString());
    handler(req, res).catch((err: unknown) => {
      log(`internal error: ${(err as Error).message}`);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  const { port } = server.address() as AddressInfo;
  const origin = `http://${hostForUrl(options.host)}:${port}`;
  const issuer = `${origin}${sandboxDefaults.idpPath}`;
  const apiBaseUrl = `${origin}${sandboxDefaults.apiPath}`;
  const controlUrl = `${origin}${sandboxDefaults.controlPath}`;
  // RFC 8414 §3.1 / RFC 9728 §3.1: well-known suffix inserted before the issuer / resource path.
  const asMetadataPath = `/.well-known/oauth-authorization-server${sandboxDefaults.idpPath}`;
  const rsMetadataPath = `/.well-known/oauth-protected-resource${sandboxDefaults.apiPath}`;

  let idp: Idp;
  try {
    idp = await createIdp({ issuer, apiBaseUrl, options, lifetimes, stats });
  } catch (err) {
    server.close();
    throw err;
  }
  const { provider, serviceAccounts, inspector } = idp;
  const idpCallback = provider.callback();
  const urls = {
    issuer,
    authorization: provider.urlFor('authorization'),
    token: provider.urlFor('token'),
    revocation: provider.urlFor('revocation'),
    introspection: provider.urlFor('introspection'),
    apiBase: apiBaseUrl,
  };
  const tokenPath = new URL(urls.token).pathname;

  const handleInteraction = createInteractionHandler(provider, options.autoApprove);
  const handleApi = createApiHandler({ provider, apiBaseUrl, resourceMetadataUrl: `${origin}${rsMetadataPath}`, options, faults, outage, stats, signal: closing.signal });

  /** Hands a request to oidc-provider as if mounted at the IdP prefix (express-style originalUrl
   *  and baseUrl; oidc-provider derives its URLs from them). */
  function toIdp(req: IncomingMessage & { originalUrl?: string; baseUrl?: string }, res: ServerResponse, url: string): void {
    req.originalUrl = url;
    req.baseUrl = sandboxDefaults.idpPath;
    req.url = url.slice(sandboxDefaults.idpPath.length) || '/';
    idpCallback(req, res);
  }

  /** The token endpoint with its faults; answers the fault itself or passes the request on. */
  async function tokenEndpoint(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const down = outage.secondsLeft('tokenEndpoint');
    if (down > 0) {
      const grantType = new URLSearchParams(await readBody(req).catch(() => '')).get('grant_type') ?? undefined;
      countTokenRequest(stats, grantType, 503);
      log(`token grant_type=${grantType ?? '?'} -> 503 (outage, ${down}s left)`);
      return sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'the sandbox IdP is in an outage on purpose' }, { 'retry-after': String(down) });
    }
    const fault = faults.take('tokenEndpoint');
    if (fault?.delayMs) {
      // A slow IdP holds the request before acting on it (a queue in front of it): a client that
      // gives up or dies meanwhile is dropped, its request never processed, as behind a proxy.
      const gone = new AbortController();
      res.once('close', () => gone.abort());
      if (!(await delay(fault.delayMs, AbortSignal.any([closing.signal, gone.signal])))) return;
    }
    if (fault?.status === undefined) return toIdp(req, res, url);
    const grantType = new URLSearchParams(await readBody(req).catch(() => '')).get('grant_type') ?? undefined;
    countTokenRequest(stats, grantType, fault.status);
    log(`token grant_type=${grantType ?? '?'} -> ${fault.status} (injected, ${fault.left} left)`);
    const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {};
    sendJson(res, fault.status, { error: 'temporarily_unavailable', error_description: 'the sandbox IdP is failing on purpose' }, headers);
  }

  const persona = attachPersona(personaSpec, { origin, faults, stats, log, signal: closing.signal });

  const sandbox: Sandbox = {
    issuer,
    apiBaseUrl,
    controlUrl,
    providerDefinition: (id) => buildProviderDefinition({ urls, options, accessTokenTtl: lifetimes.accessTokenTtl }, id),
    addServiceAccount: (account) => serviceAccounts.create(account),
    addServiceAccountKey: (clientId, pem) => serviceAccounts.addKey(clientId, pem),
    removeServiceAccountKey: (clientId, pem) => serviceAccounts.removeKey(clientId, pem),
    serviceAccountDefinition(id, clientId) {
      const account = serviceAccounts.get(clientId);
      if (!account) throw new TypeError(`serviceAccountDefinition: no service account ${clientId} is registered`);
      return buildServiceAccountDefinition({ urls, options, accessTokenTtl: lifetimes.accessTokenTtl }, id, account);
    },
    stats: () => ({ ...stats, ...(persona && { persona: persona.engine.stats() }) }),
    resetStats: () => {
      Object.assign(stats, emptyStats());
      persona?.engine.resetStats();
    },
    setFaults: (f) => faults.set(f),
    setAccessTokenTtl(seconds) {
      if (!Number.isSafeInteger(seconds) || seconds <= 0) throw new TypeError('the access-token lifetime is a positive whole number of seconds');
      lifetimes.accessTokenTtl = seconds;
      persona?.engine.setAccessTokenTtl(seconds);
      log(`access-token lifetime now ${seconds}s`);
    },
    async invalidateAccessToken(token) {
      if (persona?.engine.invalidateAccessToken(token)) return;
      if (!(await invalidateAccessToken(provider, token))) throw new Error('invalidateAccessToken: the sandbox knows no such access token');
    },
    async revokeGrants(target) {
      const outcome = await revokeGrants(provider, inspector, target);
      log(`${outcome.revoked} grant(s) of ${'all' in target ? 'every user' : target.user} revoked by the sandbox (simulated user/admin revocation)`);
      return outcome;
    },
    expireAccessTokens() {
      const expired = expireAccessTokens(inspector);
      log(`${expired} access token(s) expired by the sandbox`);
      return expired;
    },
    startOutage(seconds, opts) {
      const view = outage.start(seconds, opts);
      log(seconds === 0 ? 'outage ended' : `outage: token endpoint${opts?.api ? ' and API' : ''} down for ${seconds}s`);
      return view;
    },
    status: () => ({
      accessTokenTtl: lifetimes.accessTokenTtl,
      outage: outage.view(),
      faults: faults.get(),
      live: countLive(inspector),
      stats: sandbox.stats(),
    }),
    async revokeGrantOf(token) {
      if (persona?.engine.revokeGrantOf(token)) return void log('persona grant revoked by the sandbox (simulated user/admin revocation)');
      if (!(await revokeGrantOf(provider, token))) throw new Error('revokeGrantOf: the sandbox knows no such token');
      log('grant revoked by the sandbox (simulated user/admin revocation)');
    },
    authorize: (params) => followAuthorization(urls.authorization, sandboxDefaults.clientId, params),
    persona: persona?.handle,
    async close() {
      closing.abort();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };

  const handleControl = createControlHandler({
    stats: sandbox.stats,
    resetStats: sandbox.resetStats,
    getFaults: () => faults.get(),
    setFaults: sandbox.setFaults,
    setAccessTokenTtl: sandbox.setAccessTokenTtl,
    revokeGrant: async (token) => !!persona?.engine.revokeGrantOf(token) || revokeGrantOf(provider, token),
    revokeGrants: sandbox.revokeGrants,
    expireAccessTokens: sandbox.expireAccessTokens,
    startOutage: sandbox.startOutage,
    status: sandbox.status,
    providerDefinition: sandbox.providerDefinition,
  });

  handler = async (req, res) => {
    const url = req.url ?? '/';
    const parsed = URL.parse(url, origin);
    if (!parsed || !url.startsWith('/')) return sendJson(res, 400, { error: 'invalid_request' });
    const path = parsed.pathname;
    const under = (prefix: string) => path === prefix || path.startsWith(`${prefix}/`);

    if (under(sandboxDefaults.apiPath)) return handleApi(req, res, path.slice(sandboxDefaults.apiPath.length) || '/');
    if (under(sandboxDefaults.idpPath)) {
      if (await handleInteraction(req, res, path)) return;
      if (path === tokenPath && req.method === 'POST') return tokenEndpoint(req, res, url);
      return toIdp(req, res, url);
    }
    if (path === asMetadataPath) return toIdp(req, res, `${sandboxDefaults.idpPath}/.well-known/openid-configuration`);
    if (path === rsMetadataPath) {
      return sendJson(res, 200, {
        resource: apiBaseUrl,
        authorization_servers: [issuer],
        scopes_supported: resourceScopes(options),
        bearer_methods_supported: ['header'],
      });
    }
    if (under(sandboxDefaults.controlPath) && (await persona?.control(req, res, path.slice(sandboxDefaults.controlPath.length), parsed.searchParams))) return;
    if (under(sandboxDefaults.controlPath)) return handleControl(req, res, path.slice(sandboxDefaults.controlPath.length), parsed.searchParams);
    if (path === '/') return sendJson(res, 200, { issuer, api_base_url: apiBaseUrl, control_url: controlUrl, user: sandboxDefaults.accountId });
    if (await persona?.engine.handle(req, res, path, parsed.searchParams)) return;
    return sendJson(res, 404, { error: 'not_found' });
  };

  log(`listening: issuer ${issuer}, api ${apiBaseUrl}`);
  return sandbox;
}
