// The composition root: every layer is built here, once, from the config.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config/index.ts';
import {
  fileKeyRingSource,
  hashSecret,
  loadOrCreateKeyFile,
  parseKeyRing,
  randomToken,
  staticKeyRing,
  type KeyRingSource,
} from './crypto/index.ts';
import { createStore, type Store } from './store/index.ts';
import { loadCatalog, type Provider } from './providers/index.ts';
import { buildApp } from './http/app.ts';
import { createLogger } from './http/logger.ts';
import { createMetrics } from './http/metrics.ts';
import { connectionRoutes } from './http/routes/connections.ts';
import { connectRoutes } from './http/routes/connect.ts';
import { auditRoutes } from './http/routes/audit.ts';
import { agentRoutes } from './http/routes/agents.ts';
import { createAgentService, type AgentService } from './agents/index.ts';
import { rawProxyRoute } from './http/routes/proxy.ts';
import { agentTokenRoutes } from './http/routes/agent-tokens.ts';
import { webhookRoutes } from './http/routes/webhooks.ts';
import { createForwarder, createUpstreams, type Forwarder, type Upstreams } from './proxy/index.ts';
import { createAuditQueue, type AuditQueue } from './events/index.ts';
import { createMemoryLocks, createPostgresLocks, createRedisLocks, type Locks } from './locks/index.ts';
import { createAuditLog, createEventBus, type AuditLog, type EventBus } from './events/index.ts';
import { createWebhooks, type Webhooks, type WebhooksOptions } from './events/index.ts';
import {
  createClientResolver,
  createConnectFlow,
  createConnectionService,
  createScheduler,
  createTokenService,
  type ConnectFlow,
  type ConnectionService,
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
  scheduler: Scheduler;
  agents: AgentService;
  forwarder: Forwarder;
  upstreams: Upstreams;
  /** Batched audit writes of proxied calls; refuses calls while the audit cannot be written. */
  auditQueue: AuditQueue;
  /** Signed webhooks: subscriptions, fan-out of committed events, the delivery worker. */
  webhooks: Webhooks;
  /** Set only on the first start without WARRANT_ADMIN_TOKEN: shown once, never stored in the clear. */
  generatedAdminToken?: string;
  /** Listens and starts the refresh-ahead scheduler and the webhook delivery worker. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export interface WarrantOptions {
  logger?: Logger;
  now?: () => number;
  /** Called once with a message for the operator's eyes (key generated, admin token …). */
  notice?: (message: string) => void;
  /** Run the refresh-ahead scheduler after listen() (default true). */
  scheduler?: boolean;
  /** Environment for `${env:NAME}` references in provider definitions (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Webhook delivery: false = no worker in this process (deliveries are still queued); or tuning. */
  webhooks?: false | Pick<WebhooksOptions, 'retry' | 'fetchTimeoutMs' | 'pollIntervalMs'>;
}

function locksFor(config: Config, store: Store): Locks {
  if (config.redisUrl) return createRedisLocks(config.redisUrl);
  if (store.dialect === 'postgres') return createPostgresLocks(store.db);
  return createMemoryLocks();
}

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

const ADMIN_HASH = 'admin_token_hash';

async function adminTokenHash(store: Store, config: Config, now: number): Promise<{ hash: string; generated?: string }> {
  if (config.adminToken) return { hash: hashSecret(config.adminToken) };
  const stored = await store.settings.get(ADMIN_HASH);
  if (stored) return { hash: stored };
  const token = randomToken(32, 'wat_');
  if (await store.settings.setIfAbsent(ADMIN_HASH, hashSecret(token), now)) return { hash: hashSecret(token), generated: token };
  return { hash: (await store.settings.get(ADMIN_HASH))! }; // another instance won the race
}

export async function createWarrant(config: Readonly<Config>, opts: WarrantOptions = {}): Promise<Warrant> {
  const logger = opts.logger ?? createLogger(config.logLevel);
  const notice = opts.notice ?? ((m: string) => logger.warn(m));
  const now = opts.now ?? Date.now;
  const catalog = loadCatalog(config.providersPath);
  const store = await createStore({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    ring: keyRingFor(config, notice),
    now,
  });
  const admin = await adminTokenHash(store, config, now());
  const metrics = createMetrics();
  const clock = { now };
  const locks = locksFor(config, store);
  const audit = createAuditLog({ db: store.db, dialect: store.dialect, sqliteFile: store.sqliteFile, now });
  const bus = createEventBus();
  const clients = createClientResolver({ timeoutMs: config.idpTimeoutMs, env: opts.env });
  const timing = { refreshSkewSeconds: config.refreshSkewSeconds, refreshSkewFraction: config.refreshSkewFraction };
  // The token service needs re-connect links, which the connect flow makes: wired through a late binding.
  let connect!: ConnectFlow;
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
    reauthUrl: (row) => connect.reconnectUrl(row),
    onRefresh: (provider, outcome) => metrics.tokenRefreshes.inc({ provider, outcome }),
  });
  const connections = createConnectionService({ store, catalog, tokens, clients, audit, bus, clock, logger, timing });
  connect = createConnectFlow({
    store,
    connections,
    clients,
    clock,
    logger,
    publicUrl: config.publicUrl,
    sessionTtlSeconds: config.connectSessionTtlSeconds,
  });
  const agents = createAgentService({ store, audit, bus, clock, logger });
  const auditQueue = createAuditQueue({ audit, logger });
  const upstreams = createUpstreams();
  const forwarder = createForwarder({ store, catalog, tokens, upstreams, auditQueue, logger });
  const authenticate = (bearer: string | undefined) => agents.authenticate(bearer);
  const webhooks = createWebhooks({ store, bus, audit, logger, clock, ...(opts.webhooks || {}) });
  const scheduler = createScheduler({ store, tokens, clock, logger, intervalMs: config.schedulerIntervalMs });
  const app = await buildApp({
    logger,
    metrics,
    catalog,
    ping: () => store.ping(),
    adminTokenHash: () => admin.hash,
    routes: [
      connectionRoutes(connections),
      connectRoutes(connect),
      auditRoutes(audit),
      agentRoutes(agents),
      agentTokenRoutes({ tokens, auditQueue, authenticate }),
      webhookRoutes(webhooks),
    ],
    rawRoutes: [rawProxyRoute({ forwarder, authenticate, logger, metrics })],
  });

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
    scheduler,
    agents,
    forwarder,
    upstreams,
    auditQueue,
    webhooks,
    generatedAdminToken: admin.generated,
    async listen() {
      const address = await app.listen({ host: config.host, port: config.port });
      if (opts.scheduler !== false) scheduler.start();
      if (opts.webhooks !== false) webhooks.start();
      return address;
    },
    async close() {
      await scheduler.stop();
      await app.close();
      await auditQueue.close();
      await audit.close();
      await upstreams.close();
      await agents.settle();
      await webhooks.stop();
      await locks.close();
      await store.close();
    },
  };
}
