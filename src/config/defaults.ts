// Every setting's default, with its unit, in one place. Environment variables of DESIGN.md
// ("Running it") override these; see src/config/index.ts for the mapping.

export const defaults = {
  /** WARRANT_HOST */
  host: '127.0.0.1',
  /** WARRANT_PORT */
  port: 7070,
  /** WARRANT_DATA_DIR: the embedded SQLite store and, in embedded mode, the generated master key. */
  dataDir: './.warrant',
  /** WARRANT_LOG_LEVEL: pino level. */
  logLevel: 'info',
  /** WARRANT_REFRESH_SKEW_SECONDS: refresh this long before expiry (a fraction of the lifetime for short tokens). */
  refreshSkewSeconds: 300,
  /** Short-lived tokens are refreshed once this fraction of their lifetime remains. */
  refreshSkewFraction: 0.25,
  /** WARRANT_HTTP_TIMEOUT_MS: timeout of every call to an IdP. */
  idpTimeoutMs: 10_000,
  /** WARRANT_CONNECT_SESSION_TTL_SECONDS: how long a connect session's `state` stays usable. */
  connectSessionTtlSeconds: 600,
  /** WARRANT_SCHEDULER_INTERVAL_MS: how often the refresh-ahead scheduler looks for due connections. */
  schedulerIntervalMs: 5_000,
  /** WARRANT_DB_POOL_SIZE: PostgreSQL connections for the work (the scheduler claims 4 per provider, the proxy reads per call). */
  dbPoolSize: 20,
  /** WARRANT_DB_ACQUIRE_TIMEOUT_MS: longest wait for a pooled PostgreSQL connection; past it the request answers 503 `unavailable`. */
  dbAcquireTimeoutMs: 5_000,
  /** WARRANT_AUDIT_WRITE_DEADLINE_MS: an audit entry unwritten this long makes calls answer 503 `unavailable` until the backlog is written (fail closed); PostgreSQL audit writes are cancelled past it and retried. */
  auditWriteDeadlineMs: 5_000,
  /** WARRANT_SHUTDOWN_GRACE_SECONDS: on SIGTERM, drain in-flight work this long, then abandon it (exit code 1). */
  shutdownGraceSeconds: 10,
  /** WARRANT_AGENT_RATE_PER_SECOND: proxied calls, token exports and leases per second per agent (0 = off). */
  agentRatePerSecond: 100,
  /** WARRANT_AGENT_BURST / WARRANT_CONNECTION_BURST, when unset: this many seconds' worth of the rate. */
  burstPerRate: 2,
  /** WARRANT_AGENT_CONCURRENCY: calls in flight per agent on one instance (0 = off). */
  agentConcurrency: 64,
  /** WARRANT_CONNECTION_RATE_PER_SECOND: calls per second per connection, all its agents together (0 = off). */
  connectionRatePerSecond: 200,
  /** WARRANT_CONNECTION_CONCURRENCY: calls in flight per connection on one instance (0 = off). */
  connectionConcurrency: 128,
  /** WARRANT_PROXY_BODY_LIMIT_BYTES: largest request body the proxy forwards (100 MiB). */
  proxyBodyLimitBytes: 100 * 1024 * 1024,
  /** WARRANT_PROXY_IDLE_TIMEOUT_MS: a proxied request body idle this long answers 408. */
  proxyIdleTimeoutMs: 30_000,
  /** WARRANT_WEBHOOK_ALLOWED_NETWORKS: networks webhooks may reach although not public (none: private, loopback, link-local refused). */
  webhookAllowedNetworks: [] as readonly string[],
  /** Failed admin authentications per second per client address, in-process; past the burst they answer 429. */
  adminAuthFailuresPerSecond: 10,
  adminAuthFailureBurst: 20,
  /** WARRANT_AGENT_IDLE_DAYS: an agent without an authenticated request for this many days is an `idle` orphan (0 = never). */
  agentIdleDays: 30,
  /** WARRANT_ORPHAN_POLICY: `report` (an `agent.orphaned` event) or `suspend` (the event, and the agent suspended). */
  orphanPolicy: 'report' as 'report' | 'suspend',
  /** How often each instance sweeps for orphans (one at a time across instances; each orphan announced once). */
  orphanSweepIntervalMs: 60_000,
  /** WARRANT_ROTATE_REFRESH_TOKEN_DAYS: a refresh token older than this is rotated (forced refresh) where the IdP rotates, else announced to its owner (0 = no schedule). */
  rotateRefreshTokenDays: 30,
  /** WARRANT_ROTATE_PRIVATE_KEY_DAYS: a JWT-bearer private key older than this is replaced; the new key pair is made 14 days ahead for upload (0 = no schedule). */
  rotatePrivateKeyDays: 90,
  /** WARRANT_ROTATE_CLIENT_SECRET_DAYS: a provider client secret older than this (from when Warrant first saw it) is announced for replacement (0 = no schedule). */
  rotateClientSecretDays: 90,
  /** How often each instance runs the rotation pass (one at a time across instances). */
  rotationCheckIntervalMs: 5 * 60_000,
  /** Instances re-stamp the key they seal with this often (`key_usage`), and on changing it. */
  keyHeartbeatMs: 60_000,
} as const;
