import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { AgentService } from '../agents/index.ts';
import type { Store } from '../store/index.ts';
import type { EnterpriseIdp } from '../config/index.ts';
import type { AuditInput } from '../events/index.ts';
import { createGuardedFetch } from '../mcp/gateway/discovery.ts';
import { sweepExpired } from './adapter.ts';
import { createClientAgents } from './agents.ts';
import { createInteractions } from './interaction.ts';
import { loadOrCreateKeys } from './keys.ts';
import { createLoginCodes } from './login-codes.ts';
import { authzDefaults, authzPaths } from './options.ts';
import { createAuthzProvider } from './provider.ts';
import { createResources } from './resources.ts';
import { createAccessTokenVerifier } from './verify.ts';
import { createHeadlessClients } from './headless.ts';
import type { AuthzKeys } from './keys.ts';

export interface AuthzDeps {
  store: Store;
  agents: Pick<AgentService, 'create' | 'authenticate'>;
  logger: Logger;
  now?: () => number;
  /** WARRANT_PUBLIC_URL; its origin is the issuer (a `:0` port is taken from the bound address). */
  publicUrl: string;
  ttl?: Partial<typeof authzDefaults.ttlSeconds>;
  /** Where the server's own events are recorded (RFC 8693 exchanges: token-exchange.ts). */
  audit?: (entry: AuditInput) => Promise<void>;
  /**
   * Enterprise-managed authorization (SEP-990, id-jag.ts): the IdPs of WARRANT_ENTERPRISE_IDPS, the
   * deadline of a JWKS fetch (ms), and where each grant is audited. Unset or no IdP: no such grant.
   */
  enterprise?: { idps: readonly EnterpriseIdp[]; jwksTimeoutMs: number; audit: (entry: AuditInput) => Promise<void> };
  /**
   * What the server may fetch (client metadata documents, a client's jwks_uri): the MCP gateway's
   * rules, so WARRANT_MCP_ALLOWED_NETWORKS; none allowed beyond public addresses unless given.
   */
  outbound?: { allowedNetworks: readonly string[]; allowInsecureHttp: boolean; timeoutMs: number };
}

/** The issuer: the public URL's origin; with port 0 (tests, `WARRANT_PORT=0`), the port bound. */
export function issuerFor(publicUrl: string, boundAddress?: string): string {
  const url = new URL(publicUrl);
  if (url.port === '0' && boundAddress) url.port = new URL(boundAddress).port;
  return url.origin;
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

export function createAuthz(deps: AuthzDeps) {
  const now = deps.now ?? Date.now;
  const { store, logger } = deps;
  let issuer = issuerFor(deps.publicUrl);
  const resources = createResources(() => issuer);
  const loginCodes = createLoginCodes({ store, now, ttlSeconds: authzDefaults.loginCodeTtlSeconds });
  const clientAgents = createClientAgents({ store, agents: deps.agents, now });
  let provider: Provider | undefined;
  let callback: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  let interactions: ReturnType<typeof createInteractions> | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  let keys: AuthzKeys | undefined;
  const guard = createGuardedFetch(deps.outbound ?? { allowedNetworks: [], allowInsecureHttp: false, timeoutMs: authzDefaults.outboundTimeoutMs });
  const headless = createHeadlessClients({ provider: () => provider, clientAgents, store, now });
  const verifyAccessToken = createAccessTokenVerifier({ store, now, issuer: () => (provider ? issuer : undefined), signingKeys: () => keys?.jwks.keys });

  const ours = (path: string) => path.startsWith(authzPaths.prefix) || authzPaths.metadata.includes(path);

  async function serve(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (!provider || !callback || !interactions) return json(res, 503, { error: 'temporarily_unavailable', error_description: 'the authorization server is starting' });
    if (await interactions(req, res, path)) return;
    // RFC 8414 §3: the same metadata as OpenID discovery (oidc-provider serves the latter).
    if (path === authzPaths.metadata[0]) req.url = `${authzPaths.metadata[1]}${req.url!.slice(path.length)}`;
    callback(req, res);
  }

  return {
    resources,
    loginCodes,
    clientAgents,
    /** Admin-registered private_key_jwt clients (client credentials), bound to an owner. */
    headless,
    /** RFC 8707: is this a resource Warrant issues tokens for? (extend with `resources.add`) */
    isKnownResource: (url: string) => resources.isKnownResource(url),
    /**
     * Verifies one of Warrant's access tokens for `resource` (its `aud`): `{agentId, owner, scopes,
     * clientId}`, or `agent_unauthenticated` (401 `invalid_token`). For every resource server in Warrant.
     */
    verifyAccessToken,
    /** `{issuer}{path}`: the canonical indicator of one of Warrant's own resources (`/mcp/warrant`). */
    resourceUrl: (path: string) => `${issuer}${path}`,
    get issuer() {
      return issuer;
    },
    get provider(): Provider | undefined {
      return provider;
    },

    /** Loads (or makes) the keys and builds the server; called once the port is bound. */
    async start(boundAddress?: string): Promise<void> {
      if (provider) return;
      issuer = issuerFor(deps.publicUrl, boundAddress);
      const loaded = await loadOrCreateKeys(store.vault);
      const tokenExchange = { authenticateAgent: (key: string) => deps.agents.authenticate(key), verifyAccessToken, audit: deps.audit };
      const p = createAuthzProvider({ issuer, store, keys: loaded, resources, clientAgents, logger, now, ttl: deps.ttl, tokenExchange, guardedFetch: guard.fetch, verifyAccessToken,
        ...(deps.enterprise ? { idJag: { idps: deps.enterprise.idps, audit: deps.enterprise.audit, jwksTimeoutMs: deps.enterprise.jwksTimeoutMs } } : {}) });
      interactions = createInteractions({ provider: p, loginCodes, clientAgents, owners: store.owners, csrfKey: loaded.cookieKeys[0]!, logger });
      keys = loaded;
      callback = p.callback() as (req: IncomingMessage, res: ServerResponse) => void;
      provider = p;
      sweepTimer = setInterval(() => {
        sweepExpired(store, now(), { retentionMs: authzDefaults.sweepRetentionMs, batch: authzDefaults.sweepBatch }).catch((err: Error) =>
          logger.warn({ err: { message: err.message } }, 'authz sweep failed; retried later'),
        );
      }, authzDefaults.sweepIntervalMs);
      sweepTimer.unref();
    },

    /** For the app's serverFactory: takes `/oauth2/…` and the metadata documents, ahead of Fastify. */
    rawRoute(req: IncomingMessage, res: ServerResponse): boolean {
      const path = (req.url ?? '/').split('?')[0]!;
      if (!ours(path)) return false;
      serve(req, res, path).catch((err: Error) => {
        logger.error({ err: { message: err.message, name: err.name } }, 'authz request failed');
        if (!res.headersSent) json(res, 500, { error: 'server_error' });
        else res.destroy();
      });
      return true;
    },

    /** One pass of the sweep (expired rows, clients unused for 90 days); how many rows went. */
    sweep: (batch = authzDefaults.sweepBatch) => sweepExpired(store, now(), { retentionMs: authzDefaults.sweepRetentionMs, batch }),

    async close(): Promise<void> {
      if (sweepTimer) clearInterval(sweepTimer);
      await guard.close();
    },
  };
}

export type Authz = ReturnType<typeof createAuthz>;
