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
} as const;
