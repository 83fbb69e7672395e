// The composition root: every layer is built here, once, from the config.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { defaults, type Config } from './config/index.ts';
import {
  fileKeyRingSource,
  loadOrCreateKeyFile,
  parseKeyRing,
  staticKeyRing,
  type KeyRingSource,
} from './crypto/index.ts';
import { createStore, createAdminTokens, createKeyHeartbeat, type Store } from './store/index.ts';
import { createShutdown, trackInFlight, type ShutdownReport } from './util/shutdown.ts';
import { loadCatalog, type Provider } from './providers/index.ts';
import { buildApp } from './http/app.ts';
import { createLogger } from './http/logger.ts';
import { createMetrics } from './http/metrics.ts';
import { connectionRoutes } from './http/routes/connections.ts';
import { connectRoutes } from './http/routes/connect.ts';
import { createConnectPages, defaultBrand } from './http/connect-pages.ts';
import { auditRoutes } from './http/routes/audit.ts';
import { agentRoutes } from './http/routes/agents.ts';
import { reviewRoutes } from './http/routes/review.ts';
import { createAgentService, createKeyInvalidations, createOffboarding, type AgentService, type KeyInvalidations, type Offboarding } from './agents/index.ts';
import { ownerRoutes } from './http/routes/owners.ts';
import { createScimUsers, scimRoutes } from './scim/index.ts';
import { rawProxyRoute } from './http/routes/proxy.ts';
import { agentTokenRoutes } from './http/routes/agent-tokens.ts';
import { webhookRoutes } from './http/routes/webhooks.ts';
import { statusRoutes } from './http/routes/status.ts';
import { rotationRoutes } from './http/routes/rotations.ts';
import { adminKeyRoutes } from './http/routes/admin-keys.ts';
import { whoamiRoutes } from './http/routes/whoami.ts';
import { createUiSessions, webRoutes } from './web/index.ts';
import { readFileSync } from 'node:fs';
import { createAdminKeys, createStatus, type AdminKeys } from './admin/index.ts';
import { authzRoutes, createAuthz, mcpServerResources, type Authz, type authzDefaults } from './authz/index.ts';
import { createForwarder, createUpstreams, type Forwarder, type Upstreams } from './proxy/index.ts';
import { createAuditQueue, type AuditQueue } from './events/index.ts';
import { createLimits, type Limits } from './limits/index.ts';
import { createWarrantMcp, WARRANT_MCP_PATH, type WarrantMcp } from './mcp/index.ts';
import { createGateway, type Gateway } from './mcp/gateway/index.ts';
import { mcpServerRoutes } from './http/routes/mcp-servers.ts';
import { createMemoryLocks, createPostgresLocks, createRedisLocks, withFallback, type Locks } from './locks/index.ts';
import { createAuditHmac, createAuditLog, createEventBus, loadChainKey, type AuditLog, type ChainKey, type EventBus } from './events/index.ts';
import { createWebhooks, createWebhookTags, type Webhooks, type WebhooksOptions } from './events/index.ts';
import { tagsOf } from './util/tags.ts';
import {
  createClientResolver,
  createConnectFlow,
  createExpiryNotices,
  createConnectionService,
  createReconnects,
  createScheduler,
  createTokenService,
  createRotations,
  type Rotations,
  type ConnectFlow,
  type ConnectionService,
  type Reconnects,
  type Scheduler,
  type TokenService,
} from './tokens/index.ts';

export interface Warrant {
  config: Readonly<Config>;
  app: FastifyInstance;
  store: Store;
  catalog: Map<string, Provider>;
  logger: Logger;
  locks: Locks;
  audit: AuditLog;
  bus: EventBus;
  tokens: TokenService;
  connections: ConnectionService;
  connect: ConnectFlow;
  /** Re-connect links (single use, browser-bound, only while reauth_required) and confirmations. */
  reconnects: Reconnects;
  scheduler: Scheduler;
  /** Rotation schedules: due credentials listed and rotated (`warrant rotate --due`, the scheduler). */
  rotations: Rotations;
  agents: AgentService;
  /** Offboarding owners (the admin API, `warrant owners offboard` and SCIM share this one). */
  offboarding: Offboarding;
  /** Carries agent-key and connection changes to every instance's caches (Redis and/or the store); `current()` tells whether they may be served. */
  keyInvalidations: KeyInvalidations;
  forwarder: Forwarder;
  upstreams: Upstreams;
  /** Batched audit writes of proxied calls; refuses calls while the audit cannot be written. */
  auditQueue: AuditQueue;
  /** Per-agent and per-connection rate limits and concurrency caps of agent calls. */
  limits: Limits;
  /** Signed webhooks: subscriptions and the delivery worker (the audit log queues deliveries). */
  webhooks: Webhooks;
  /** Warrant's own OAuth 2.1 authorization server (`/oauth2/…`); started by listen(). */
  authz: Authz;
  /** Warrant's own MCP server at /mcp/warrant. */
  mcp: WarrantMcp;
  /** The MCP gateway: /mcp/{server} in front of registered remote MCP servers. */
  gateway: Gateway;
  /** Scoped admin keys (read / operate / admin) beside the admin token. */
  adminKeys: AdminKeys;
  /**
   * Set by listen() on the first start without WARRANT_ADMIN_TOKEN, once the port is bound:
   * shown once, never stored in the clear.
   */
  readonly generatedAdminToken?: string;
  /**
   * Listens; once bound, settles the admin token (generated on the first start) and starts the
   * refresh-ahead scheduler and the webhook delivery worker.
   */
  listen(): Promise<string>;
  /**
   * Stops accepting, drains in-flight requests and background work for at most `graceMs`
   * (default WARRANT_SHUTDOWN_GRACE_SECONDS), then closes the rest; never waits past the grace
   * plus a short tail for the audit flush and the store.
   */
  close(opts?: { graceMs?: number }): Promise<ShutdownReport>;
}

export interface WarrantOptions {
  logger?: Logger;
  now?: () => number;
  /** Called once with a message for the operator's eyes (key generated, admin token …). */
  notice?: (message: string) => void;
  /** Run the refresh-ahead scheduler and the orphan sweep after listen() (default true). */
  scheduler?: boolean;
  /** Environment for `${env:NAME}` references in provider definitions (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Webhook delivery: false = no worker in this process (deliveries are still queued); or tuning. */
  webhooks?: false | Pick<WebhooksOptions, 'retry' | 'fetchTimeoutMs' | 'pollIntervalMs'>;
  /** Lifetimes (seconds) of the authorization server's artefacts, over authzDefaults.ttlSeconds (tests: short access tokens). */
  authzTtl?: Partial<typeof authzDefaults.ttlSeconds>;
  /** Called with each statement the store runs through Kysely (bench/proxy.ts --count-queries). */
  onStoreQuery?: (sql: string) => void;
  /** How long an audit entry that finds the writer idle waits for company, ms (events/audit-queue.ts; default 2). For benches. */
  auditFlushIntervalMs?: number;
}

/** The version shown by the dashboard (package.json). */
const WARRANT_VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function locksFor(config: Config, store: Store, logger: Logger): Locks {
  // The lock pool is apart from the work pool: a holder never waits for a connection a waiter holds.
  const local = store.sidePool ? createPostgresLocks(store.sidePool(lockPoolSize(config.dbPoolSize))) : createMemoryLocks();
  return config.redisUrl ? withFallback(createRedisLocks(config.redisUrl), local, logger) : local;
}

/** Connections refreshing at once on one instance, each holding one lock connection. */
export const lockPoolSize = (workPoolSize: number) => Math.max(2, Math.ceil(workPoolSize / 2));

export function keyRingFor(config: Config, notice: (m: string) => void): KeyRingSource {
  if (config.masterKey) return staticKeyRing(parseKeyRing(config.masterKey));
  const { created, path } = loadOrCreateKeyFile(config.dataDir);
  if (created) {
    notice(
      `WARNING: no WARRANT_MASTER_KEY set; generated one into ${path} (mode 0600). ` +
        'Anyone who can read that file and the database can read every token: back it up apart from the data, ' +
        'or set WARRANT_MASTER_KEY.',
    );
  }
  return fileKeyRingSource(path);
}

/** One line for a later start that finds a token stored and none configured. */
export const ADMIN_TOKEN_STORED_NOTICE =
  'An admin token is already stored (printed on the first start). To use another: set WARRANT_ADMIN_TOKEN, ' +
  'or run `warrant admin-token rotate` to store and print a new one.';

/** After the grace, this long more for the audit flush and closing the store (a flush is always attempted). */
const CLOSE_TAIL_MS = 1_000;

export async function createWarrant(config: Readonly<Config>, opts: WarrantOptions = {}): Promise<Warrant> {
  const logger = opts.logger ?? createLogger(config.logLevel, { format: config.logFormat });
  const notice = opts.notice ?? ((m: string) => logger.warn(m));
  const now = opts.now ?? Date.now;
  const catalog = loadCatalog(config.providersPath);
  const ring = keyRingFor(config, notice);
  const store = await createStore({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.dbPoolSize,
    acquireTimeoutMs: config.dbAcquireTimeoutMs,
    ring,
    now,
    onQuery: opts.onStoreQuery,
  });
  // Which key this instance seals with, kept current in the store: `warrant keys rotate` (any
  // process) retires a key only once no running instance may still seal with it.
  const keyHeartbeat = createKeyHeartbeat({
    keys: store.keys,
    ring,
    now,
    intervalMs: defaults.keyHeartbeatMs,
    onError: (err) => logger.warn({ err }, 'could not record the key this instance seals with; retried'),
  });
  try {
    await keyHeartbeat.start();
  } catch (err) {
    await store.close();
    throw err;
  }
  // Before the audit log: every entry it appends is an HMAC under the chain key sealed in the vault.
  let chain: ChainKey;
  try {
    const loaded = await loadChainKey({ vault: store.vault, db: store.db, dialect: store.dialect });
    chain = loaded.chain;
    if (loaded.created && chain.fromSeq > 1) {
      // Expected once, on the upgrade to a keyed chain; again means the key was removed from the store.
      logger.warn({ keyed_from: chain.fromSeq }, 'audit chain key created: earlier audit entries stay unkeyed (SHA-256)');
    }
  } catch (err) {
    await keyHeartbeat.stop();
    await store.close();
    throw err;
  }
  // Generated, stored and printed only in listen(), once the port is bound: a failed bind loses nothing.
  const adminTokens = createAdminTokens({ settings: store.settings, configured: config.adminToken, now });
  let generatedAdminToken: string | undefined;
  const metrics = createMetrics();
  const clock = { now };
  const locks = locksFor(config, store, logger);
  if (store.dialect === 'sqlite') await store.connections.releaseAllClaims();
  // PostgreSQL: the audit writer has a small pool of its own (one round trip per batch, statement timeout; events/audit-pg.ts).
  const audit = createAuditLog({ db: store.db, dialect: store.dialect, sqliteFile: store.sqliteFile, now, chain, pgPool: store.sidePool?.(2), writeTimeoutMs: config.auditWriteDeadlineMs, onQuery: opts.onStoreQuery });
  const bus = createEventBus();
  const clients = createClientResolver({ timeoutMs: config.idpTimeoutMs, env: opts.env, untrustedAllowedNetworks: config.mcpAllowedNetworks });
  const timing = { refreshSkewSeconds: config.refreshSkewSeconds, refreshSkewFraction: config.refreshSkewFraction };
  // The token service needs re-connect links, which the connect flow makes: wired through a late binding.
  let connect!: ConnectFlow;
  // Carries agent-key and connection changes to every instance's caches (Redis and/or the store).
  const keyInvalidations = createKeyInvalidations({ store, redisUrl: config.redisUrl, logger, now });
  const tokens = createTokenService({
    store,
    catalog,
    locks,
    audit,
    bus,
    clients,
    clock,
    logger,
    timing,
    idpTimeoutMs: config.idpTimeoutMs,
    // Agent-facing problems point at the connection, never at a re-connect link (a capability).
    reauthUrl: async (row) => connect.statusUrl(row),
    onRefresh: (provider, outcome) => metrics.tokenRefreshes.inc({ provider, outcome }),
    changes: keyInvalidations.connections,
  });
  const connections = createConnectionService({ store, catalog, tokens, clients, audit, bus, clock, logger, timing });
  connect = createConnectFlow({
    store,
    connections,
    clients,
    clock,
    logger,
    audit,
    bus,
    publicUrl: config.publicUrl,
    redirectPerProvider: config.redirectPerProvider,
    sessionTtlSeconds: config.connectSessionTtlSeconds,
    idpTimeoutMs: config.idpTimeoutMs,
  });
  const reconnects = createReconnects({ store, flow: connect, catalog, audit, bus, clock, logger, timing, invalidate: tokens.invalidate });
  const agents = createAgentService({
    store, audit, bus, clock, logger, invalidations: keyInvalidations,
    locks, orphans: { idleDays: config.agentIdleDays, policy: config.orphanPolicy },
  });
  const offboarding = createOffboarding({ store, audit, bus, clock, logger, agents, connections });
  const adminKeys = createAdminKeys({ store, audit, bus, clock, logger });
  const authz = createAuthz({
    store, agents, logger, now, publicUrl: config.publicUrl, ttl: opts.authzTtl,
    audit: async (entry) => bus.publish(await audit.append(entry)),
    outbound: { allowedNetworks: config.mcpAllowedNetworks, allowInsecureHttp: config.allowInsecureHttp, timeoutMs: config.idpTimeoutMs },
    enterprise: { idps: config.enterpriseIdps, jwksTimeoutMs: config.idpTimeoutMs, audit: async (entry) => bus.publish(await audit.append(entry)) },
  });
  const auditQueue = createAuditQueue({ audit, logger, writeDeadlineMs: config.auditWriteDeadlineMs, flushIntervalMs: opts.auditFlushIntervalMs });
  const upstreams = createUpstreams();
  const forwarder = createForwarder({ store, catalog, tokens, upstreams, auditQueue, logger, auditHmac: createAuditHmac(chain.key), changes: keyInvalidations.connections });
  const authenticate = (bearer: string | undefined) => agents.authenticate(bearer);
  const limits = createLimits({
    settings: {
      agentRatePerSecond: config.agentRatePerSecond,
      agentBurst: config.agentBurst,
      agentConcurrency: config.agentConcurrency,
      connectionRatePerSecond: config.connectionRatePerSecond,
      connectionBurst: config.connectionBurst,
      connectionConcurrency: config.connectionConcurrency,
    },
    redisUrl: config.redisUrl,
    logger,
  });
  const webhookTags = createWebhookTags({ db: store.db });
  const webhooks = createWebhooks({
    store,
    bus,
    audit,
    logger,
    clock,
    // A connection's or agent's tags (products route alerts per end user), and a fresh re-connect link where one is due.
    extend: async (e) => {
      const [tags, extras] = await Promise.all([webhookTags(e).catch(() => undefined), reconnects.webhookExtras(e)]);
      return tags || extras ? { ...tags, ...extras } : undefined;
    },
    allowedNetworks: config.webhookAllowedNetworks,
    ...(opts.webhooks || {}),
  });
  const mcp = createWarrantMcp({ publicUrl: config.publicUrl, store, catalog, forwarder, connect, audit, auditQueue, bus, limits, logger, authenticateAgent: authenticate, chainKey: chain.key, verifyAccessToken: authz.verifyAccessToken, accessTokenResource: () => authz.resourceUrl(WARRANT_MCP_PATH) });
  const gateway = createGateway({
    publicUrl: config.publicUrl, issuer: () => authz.issuer, store, catalog, tokens, clients, connections, audit, auditQueue, bus, logger, now,
    verifyAccessToken: authz.verifyAccessToken, reconnectLink: async (id) => (await reconnects.link(id)).url, chainKey: chain.key,
    stepUpLink: async (id, scopes) => {
      const row = await store.connections.get(id);
      return row ? (await connect.createSession({ provider: row.provider, environment: row.environment, owner: row.owner, scopes, params: JSON.parse(row.params) as Record<string, string>, ...tagsOf(row) })).connect_url : undefined;
    },
    clientMetadataUrl: config.clientMetadataUrl,
    allowedNetworks: config.mcpAllowedNetworks, allowInsecureHttp: config.allowInsecureHttp, redirectPerProvider: config.redirectPerProvider, timeoutMs: config.idpTimeoutMs,
  });
  await gateway.load();
  // Tokens for /mcp/{name} only where a server is registered under that name.
  authz.resources.add(mcpServerResources((name) => gateway.servers.has(name)));
  const expiry = createExpiryNotices({ store, catalog, audit, bus, clock, logger, rotateRefreshTokenMs: config.rotation.refreshTokenDays * 86_400_000 });
  const rotations = createRotations({ store, catalog, tokens, clients, locks, audit, bus, clock, logger, settings: config.rotation, env: opts.env, expiry });
  const scheduler = createScheduler({ store, tokens, clock, logger, intervalMs: config.schedulerIntervalMs, expiry, rotations, rotationCheckIntervalMs: defaults.rotationCheckIntervalMs });
  const app = await buildApp({
    logger,
    metrics,
    catalog,
    ping: () => store.ping(),
    auditAccepting: () => auditQueue.healthy(),
    verifyAdminToken: (token) => adminTokens.verify(token),
    // An admin key (`wak_…`), else the admin token.
    authenticateAdmin: async (token) => (adminKeys.looksLikeKey(token) && (await adminKeys.authenticate(token))) || adminTokens.verify(token),
    metricsToken: config.metricsToken,
    env: opts.env,
    routes: [
      connectionRoutes(connections),
      connectRoutes(connect, reconnects, createConnectPages({ ...defaultBrand, ...config.brand })),
      auditRoutes(audit),
      agentRoutes(agents),
      reviewRoutes(agents),
      ownerRoutes(offboarding),
      // SCIM 2.0 at /scim/v2 only with WARRANT_SCIM_TOKEN (unset: 404); it offboards through the same service.
      ...(config.scimToken
        ? [scimRoutes({ users: createScimUsers({ store, audit, bus, clock, offboard: (owner, actor) => offboarding.offboard(owner, actor) }), token: config.scimToken, publicUrl: config.publicUrl })]
        : []),
      agentTokenRoutes({ tokens, auditQueue, authenticate, limits }),
      webhookRoutes(webhooks),
      statusRoutes(createStatus({ db: store.db, agents, audit, now })),
      rotationRoutes(rotations),
      adminKeyRoutes(adminKeys),
      whoamiRoutes(),
      // The dashboard at /ui: a client of the routes above (in-process), its session key derived from the chain key.
      webRoutes({ sessions: createUiSessions({ chainKey: chain.key, now }), publicUrl: config.publicUrl, version: WARRANT_VERSION, now }),
      authzRoutes(authz.loginCodes, authz.headless),
      mcp.routes,
      gateway.routes,
      mcpServerRoutes(gateway, agents),
    ],
    rawRoutes: [
      (req, res) => authz.rawRoute(req, res),
      rawProxyRoute({
        forwarder,
        authenticate,
        logger,
        metrics,
        limits,
        auditQueue,
        body: { limitBytes: config.proxyBodyLimitBytes, idleTimeoutMs: config.proxyIdleTimeoutMs },
      }),
      mcp.rawRoute,
      gateway.rawRoute,
    ],
  });
  const inFlight = trackInFlight(app.server); // what close() reports when it must abandon requests

  return {
    config,
    app,
    store,
    catalog,
    logger,
    locks,
    audit,
    bus,
    tokens,
    connections,
    connect,
    reconnects,
    scheduler,
    rotations,
    agents,
    offboarding,
    keyInvalidations,
    forwarder,
    upstreams,
    auditQueue,
    limits,
    webhooks,
    authz,
    mcp,
    gateway,
    adminKeys,
    get generatedAdminToken() {
      return generatedAdminToken;
    },
    async listen() {
      const address = await app.listen({ host: config.host, port: config.port });
      await authz.start(address);
      const admin = await adminTokens.ensure();
      if (admin.kind === 'generated') generatedAdminToken = admin.token;
      if (admin.kind === 'stored') notice(ADMIN_TOKEN_STORED_NOTICE);
      if (opts.scheduler !== false) scheduler.start();
      if (opts.scheduler !== false) agents.orphanSweep.start();
      if (opts.webhooks !== false) webhooks.start();
      await keyInvalidations.start();
      return address;
    },
    async close(closeOpts = {}) {
      const graceMs = closeOpts.graceMs ?? config.shutdownGraceSeconds * 1000;
      const shutdown = createShutdown(logger);
      const deadline = Date.now() + graceMs;
      mcp.close(); // MCP sessions end first: their open streams would hold the drain
      await gateway.close().catch(() => undefined);
      // Stop accepting and drain: requests in flight (app.close waits for them), the scheduler's
      // tick, webhook attempts (aborted, retried on the next start) and agent bookkeeping.
      const [requestsDone] = await Promise.all([
        shutdown.step('http requests', () => app.close(), deadline, () => `http requests (${inFlight()} in flight)`),
        shutdown.step('scheduler tick', () => scheduler.stop(), deadline),
        shutdown.step('orphan sweep', () => agents.orphanSweep.stop(), deadline),
        shutdown.step('webhook worker', () => webhooks.stop(), deadline),
        shutdown.step('agent bookkeeping', () => agents.settle(), deadline),
        shutdown.step('key invalidations', () => keyInvalidations.stop(), deadline),
        shutdown.step('authz sweep', () => authz.close(), deadline),
      ]);
      if (!requestsDone) app.server.closeAllConnections();
      // What the drained work produced is flushed within the grace, or a short tail past it.
      const tail = Math.max(deadline, Date.now() + CLOSE_TAIL_MS);
      await shutdown.step('audit flush', () => auditQueue.close(), tail);
      await shutdown.step('audit writer', () => audit.close(), tail);
      // Abandoned calls may hold upstream connections that never end (a hung upstream): not waited for.
      if (requestsDone) await shutdown.step('upstream connections', () => upstreams.close(), tail);
      else void upstreams.close().catch(() => undefined);
      await shutdown.step('locks', () => locks.close(), tail);
      await shutdown.step('rate limits', () => limits.close(), tail);
      await shutdown.step('key lease', () => keyHeartbeat.stop(), tail);
      await shutdown.step('store', () => store.close(), tail);
      const report = shutdown.report();
      if (!report.drained) logger.warn({ abandoned: report.abandoned, graceMs }, 'shutdown grace ran out: work abandoned');
      return report;
    },
  };
}
