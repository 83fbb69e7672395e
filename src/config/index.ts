import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { defaults } from './defaults.ts';
import { cidrProblem } from '../util/addresses.ts';
import { enterpriseIdpsSchema, type EnterpriseIdp } from './enterprise-idps.ts';

export { defaults };
export type { EnterpriseIdp };

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().min(0);
const nonNegative = z.coerce.number().min(0);
const httpUrl = z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' });
/** A comma list of networks (`10.0.0.0/8,fd00::/8`, a bare address is one host). */
const networkList = z
  .string()
  .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
  .superRefine((list, ctx) => {
    const problem = list.map(cidrProblem).find(Boolean);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

// Each entry: environment variable → schema. The variable name is what a bad value's message names.
const variables = {
  WARRANT_HOST: z.string().min(1),
  WARRANT_PORT: port,
  WARRANT_PUBLIC_URL: httpUrl,
  WARRANT_ADMIN_TOKEN: z.string().min(16, { message: 'must be at least 16 characters' }),
  WARRANT_MASTER_KEY: z.string().min(1),
  WARRANT_DATA_DIR: z.string().min(1),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, message: 'must be a postgres:// URL' }),
  REDIS_URL: z.url({ protocol: /^rediss?$/, message: 'must be a redis:// or rediss:// URL' }),
  WARRANT_PROVIDERS: z.string().min(1),
  WARRANT_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  WARRANT_REFRESH_SKEW_SECONDS: positiveInt,
  WARRANT_HTTP_TIMEOUT_MS: positiveInt,
  WARRANT_CONNECT_SESSION_TTL_SECONDS: positiveInt,
  WARRANT_SCHEDULER_INTERVAL_MS: positiveInt,
  WARRANT_DB_POOL_SIZE: positiveInt,
  WARRANT_DB_ACQUIRE_TIMEOUT_MS: positiveInt,
  WARRANT_AUDIT_WRITE_DEADLINE_MS: positiveInt,
  WARRANT_SHUTDOWN_GRACE_SECONDS: z.coerce.number().min(0).max(3600),
  WARRANT_LOG_FORMAT: z.enum(['json', 'pretty']),
  WARRANT_AGENT_RATE_PER_SECOND: nonNegative,
  WARRANT_AGENT_BURST: positiveInt,
  WARRANT_AGENT_CONCURRENCY: nonNegativeInt,
  WARRANT_CONNECTION_RATE_PER_SECOND: nonNegative,
  WARRANT_CONNECTION_BURST: positiveInt,
  WARRANT_CONNECTION_CONCURRENCY: nonNegativeInt,
  WARRANT_PROXY_BODY_LIMIT_BYTES: positiveInt,
  WARRANT_PROXY_IDLE_TIMEOUT_MS: positiveInt,
  WARRANT_WEBHOOK_ALLOWED_NETWORKS: networkList,
  WARRANT_MCP_ALLOWED_NETWORKS: networkList,
  WARRANT_CLIENT_METADATA_URL: httpUrl,
  WARRANT_METRICS_TOKEN: z.string().min(16, { message: 'must be at least 16 characters' }),
  WARRANT_SCIM_TOKEN: z.string().min(16, { message: 'must be at least 16 characters' }),
  WARRANT_ALLOW_INSECURE_HTTP: z.enum(['0', '1', 'true', 'false'], { message: 'must be 1 or 0' }),
  WARRANT_REDIRECT_PER_PROVIDER: z.enum(['0', '1', 'true', 'false']),
  WARRANT_ENTERPRISE_IDPS: enterpriseIdpsSchema,
  WARRANT_AGENT_IDLE_DAYS: z.coerce.number().int().min(0).max(3650),
  WARRANT_ORPHAN_POLICY: z.enum(['report', 'suspend']),
  WARRANT_ROTATE_REFRESH_TOKEN_DAYS: z.coerce.number().int().min(0).max(3650),
  WARRANT_ROTATE_PRIVATE_KEY_DAYS: z.coerce.number().int().min(0).max(3650),
  WARRANT_ROTATE_CLIENT_SECRET_DAYS: z.coerce.number().int().min(0).max(3650),
  WARRANT_CONFIG: z.string().min(1),
  WARRANT_BRAND_NAME: z.string().trim().min(1).max(80).refine((s) => !/[\u0000-\u001f\u007f]/.test(s), { message: 'must be one line of text' }),
  WARRANT_BRAND_LOGO_URL: z
    .string()
    .max(65_536, { message: 'must be at most 64 KiB' })
    .refine((s) => (/^https:\/\//i.test(s) && URL.canParse(s)) || /^data:image\/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=]+$/.test(s), {
      message: 'must be an https:// URL or a data:image/(png|jpeg|gif|webp|svg+xml);base64 URL',
    }),
  WARRANT_BRAND_COLOR: z.string().regex(/^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/, { message: 'must be a hex colour such as #2f5bd3 or #25b' }),
} as const;

type VariableName = keyof typeof variables;
type Parsed = { [K in VariableName]?: z.output<(typeof variables)[K]> };

export interface Config {
  host: string;
  port: number;
  /** Base URL browsers and IdPs reach; the OAuth callback is this + `/oauth/callback`. */
  publicUrl: string;
  /** Explicit admin token; when unset one is generated on first start and stored hashed. */
  adminToken?: string;
  /** Key ring spec (`base64` or `id:base64,…`); unset in embedded mode means "generate into the data dir". */
  masterKey?: string;
  dataDir: string;
  databaseUrl?: string;
  redisUrl?: string;
  providersPath?: string;
  logLevel: string;
  refreshSkewSeconds: number;
  refreshSkewFraction: number;
  idpTimeoutMs: number;
  connectSessionTtlSeconds: number;
  schedulerIntervalMs: number;
  /** PostgreSQL pool size (the lock pool is sized apart from it). */
  dbPoolSize: number;
  /** Longest wait for a pooled PostgreSQL connection before answering 503 `unavailable`. */
  dbAcquireTimeoutMs: number;
  /** An audit entry unwritten this long makes the proxy refuse calls (503) until the backlog is written; also the audit writes' statement timeout. */
  auditWriteDeadlineMs: number;
  /** SIGTERM: drain in-flight work this long, then abandon it and exit non-zero. */
  shutdownGraceSeconds: number;
  /** Unset: pretty on a TTY, JSON otherwise. */
  logFormat?: 'json' | 'pretty';
  /** Calls per second per agent (token bucket; 0 = off), shared across instances through Redis. */
  agentRatePerSecond: number;
  /** Calls an agent may make at once above its rate. */
  agentBurst: number;
  /** Calls in flight per agent on one instance (0 = off). */
  agentConcurrency: number;
  /** Calls per second per connection, all its agents together (0 = off). */
  connectionRatePerSecond: number;
  connectionBurst: number;
  /** Calls in flight per connection on one instance (0 = off). */
  connectionConcurrency: number;
  /** Largest request body the proxy forwards, in bytes. */
  proxyBodyLimitBytes: number;
  /** A proxied request body that sends nothing for this long fails with 408. */
  proxyIdleTimeoutMs: number;
  /** Networks webhooks may reach although they are not public; empty: only public addresses. */
  webhookAllowedNetworks: readonly string[];
  /** Networks the MCP gateway may reach (remote servers, their metadata) although they are not public; empty: only public addresses. */
  mcpAllowedNetworks: readonly string[];
  /**
   * Where Warrant's client ID metadata document is published, its client_id at the authorization
   * servers of remote MCP servers that take CIMD; unset: `{publicUrl}/oauth/client-metadata.json`.
   * Used only when https.
   */
  clientMetadataUrl?: string;
  /** Each provider's IdP returns to `/oauth/callback/{provider}` rather than the shared `/oauth/callback`. */
  redirectPerProvider: boolean;
  /** `embedded` = SQLite in the data dir; `postgres` = DATABASE_URL. */
  storeKind: 'embedded' | 'postgres';
  /** Bearer token `/metrics` wants; unset: `/metrics` is open. */
  metricsToken?: string;
  /** WARRANT_SCIM_TOKEN: the bearer token of `/scim/v2`; unset: SCIM is off (404). */
  scimToken?: string;
  /** WARRANT_ALLOW_INSECURE_HTTP=1: accept a plain `http://` public URL on a non-loopback host. */
  allowInsecureHttp: boolean;
  /** WARRANT_ROTATE_*_DAYS: rotation schedules per credential kind, in days (0 = no schedule for that kind). */
  rotation: { refreshTokenDays: number; privateKeyDays: number; clientSecretDays: number };
  /** WARRANT_ENTERPRISE_IDPS: IdPs whose ID-JAGs (SEP-990) the authorization server accepts; empty: none. */
  enterpriseIdps: readonly EnterpriseIdp[];
  /** WARRANT_AGENT_IDLE_DAYS: days without an authenticated request that make an agent an `idle` orphan; 0 = never. */
  agentIdleDays: number;
  /** WARRANT_ORPHAN_POLICY: `report` announces orphans (`agent.orphaned`); `suspend` also suspends them. */
  orphanPolicy: 'report' | 'suspend';
  /** WARRANT_BRAND_*: the name, logo and colour of the pages owners see while connecting; each unset keeps Warrant's own. */
  brand: { name?: string; logoUrl?: string; color?: string };
}

/**
 * Reads the settings once: a config file (WARRANT_CONFIG, YAML or JSON of the same variable
 * names) first, the environment over it. A bad value throws a ConfigError naming the variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const merged: Record<string, string | undefined> = {};
  const file = env.WARRANT_CONFIG;
  if (file) Object.assign(merged, readConfigFile(file));
  for (const name of Object.keys(variables)) {
    const value = env[name];
    if (value !== undefined && value !== '') merged[name] = value;
  }

  const parsed: Parsed = {};
  const problems: string[] = [];
  for (const [name, schema] of Object.entries(variables) as [VariableName, z.ZodType][]) {
    const raw = merged[name];
    if (raw === undefined) continue;
    const result = schema.safeParse(raw);
    // The value is not echoed back: it may be a secret.
    if (!result.success) problems.push(`${name}: ${result.error.issues[0]?.message ?? 'invalid'}`);
    else (parsed as Record<string, unknown>)[name] = result.data;
  }
  if (problems.length) throw new ConfigError(`invalid settings: ${problems.join('; ')}`);

  const host = parsed.WARRANT_HOST ?? defaults.host;
  const portValue = parsed.WARRANT_PORT ?? defaults.port;
  const config: Config = {
    host,
    port: portValue,
    publicUrl: (parsed.WARRANT_PUBLIC_URL ?? `http://${host.includes(':') ? `[${host}]` : host}:${portValue}`).replace(/\/+$/, ''),
    adminToken: parsed.WARRANT_ADMIN_TOKEN,
    masterKey: parsed.WARRANT_MASTER_KEY,
    dataDir: resolve(parsed.WARRANT_DATA_DIR ?? defaults.dataDir),
    databaseUrl: parsed.DATABASE_URL,
    redisUrl: parsed.REDIS_URL,
    providersPath: parsed.WARRANT_PROVIDERS ? resolve(parsed.WARRANT_PROVIDERS) : undefined,
    logLevel: parsed.WARRANT_LOG_LEVEL ?? defaults.logLevel,
    refreshSkewSeconds: parsed.WARRANT_REFRESH_SKEW_SECONDS ?? defaults.refreshSkewSeconds,
    refreshSkewFraction: defaults.refreshSkewFraction,
    idpTimeoutMs: parsed.WARRANT_HTTP_TIMEOUT_MS ?? defaults.idpTimeoutMs,
    connectSessionTtlSeconds: parsed.WARRANT_CONNECT_SESSION_TTL_SECONDS ?? defaults.connectSessionTtlSeconds,
    schedulerIntervalMs: parsed.WARRANT_SCHEDULER_INTERVAL_MS ?? defaults.schedulerIntervalMs,
    dbPoolSize: parsed.WARRANT_DB_POOL_SIZE ?? defaults.dbPoolSize,
    dbAcquireTimeoutMs: parsed.WARRANT_DB_ACQUIRE_TIMEOUT_MS ?? defaults.dbAcquireTimeoutMs,
    auditWriteDeadlineMs: parsed.WARRANT_AUDIT_WRITE_DEADLINE_MS ?? defaults.auditWriteDeadlineMs,
    shutdownGraceSeconds: parsed.WARRANT_SHUTDOWN_GRACE_SECONDS ?? defaults.shutdownGraceSeconds,
    logFormat: parsed.WARRANT_LOG_FORMAT,
    redirectPerProvider: parsed.WARRANT_REDIRECT_PER_PROVIDER === '1' || parsed.WARRANT_REDIRECT_PER_PROVIDER === 'true',
    ...rateSettings(parsed),
    proxyBodyLimitBytes: parsed.WARRANT_PROXY_BODY_LIMIT_BYTES ?? defaults.proxyBodyLimitBytes,
    proxyIdleTimeoutMs: parsed.WARRANT_PROXY_IDLE_TIMEOUT_MS ?? defaults.proxyIdleTimeoutMs,
    webhookAllowedNetworks: parsed.WARRANT_WEBHOOK_ALLOWED_NETWORKS ?? defaults.webhookAllowedNetworks,
    mcpAllowedNetworks: parsed.WARRANT_MCP_ALLOWED_NETWORKS ?? [],
    clientMetadataUrl: parsed.WARRANT_CLIENT_METADATA_URL,
    storeKind: parsed.DATABASE_URL ? 'postgres' : 'embedded',
    metricsToken: parsed.WARRANT_METRICS_TOKEN,
    scimToken: parsed.WARRANT_SCIM_TOKEN,
    allowInsecureHttp: parsed.WARRANT_ALLOW_INSECURE_HTTP === '1' || parsed.WARRANT_ALLOW_INSECURE_HTTP === 'true',
    rotation: {
      refreshTokenDays: parsed.WARRANT_ROTATE_REFRESH_TOKEN_DAYS ?? defaults.rotateRefreshTokenDays,
      privateKeyDays: parsed.WARRANT_ROTATE_PRIVATE_KEY_DAYS ?? defaults.rotatePrivateKeyDays,
      clientSecretDays: parsed.WARRANT_ROTATE_CLIENT_SECRET_DAYS ?? defaults.rotateClientSecretDays,
    },
    enterpriseIdps: parsed.WARRANT_ENTERPRISE_IDPS ?? [],
    agentIdleDays: parsed.WARRANT_AGENT_IDLE_DAYS ?? defaults.agentIdleDays,
    orphanPolicy: parsed.WARRANT_ORPHAN_POLICY ?? defaults.orphanPolicy,
    brand: {
      ...(parsed.WARRANT_BRAND_NAME ? { name: parsed.WARRANT_BRAND_NAME } : {}),
      ...(parsed.WARRANT_BRAND_LOGO_URL ? { logoUrl: parsed.WARRANT_BRAND_LOGO_URL } : {}),
      ...(parsed.WARRANT_BRAND_COLOR ? { color: parsed.WARRANT_BRAND_COLOR.toLowerCase() } : {}),
    },
  };
  checkPublicUrl(config, parsed.WARRANT_PUBLIC_URL !== undefined);
  if (config.storeKind === 'postgres' && !config.masterKey) {
    throw new ConfigError('WARRANT_MASTER_KEY: required with DATABASE_URL (a generated key is for the embedded mode only)');
  }
  return Object.freeze(config);
}

/** The agent and connection limits; a burst left unset is twice the rate (at least 1). */
function rateSettings(parsed: Parsed) {
  const agentRatePerSecond = parsed.WARRANT_AGENT_RATE_PER_SECOND ?? defaults.agentRatePerSecond;
  const connectionRatePerSecond = parsed.WARRANT_CONNECTION_RATE_PER_SECOND ?? defaults.connectionRatePerSecond;
  return {
    agentRatePerSecond,
    agentBurst: parsed.WARRANT_AGENT_BURST ?? Math.max(1, Math.ceil(agentRatePerSecond * defaults.burstPerRate)),
    agentConcurrency: parsed.WARRANT_AGENT_CONCURRENCY ?? defaults.agentConcurrency,
    connectionRatePerSecond,
    connectionBurst: parsed.WARRANT_CONNECTION_BURST ?? Math.max(1, Math.ceil(connectionRatePerSecond * defaults.burstPerRate)),
    connectionConcurrency: parsed.WARRANT_CONNECTION_CONCURRENCY ?? defaults.connectionConcurrency,
  };
}

/** 127.0.0.0/8, ::1 (IPv4-mapped too), `localhost` and names under it (RFC 6761 §6.3). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost') || host === '::1') return true;
  const v4 = /^(?:::ffff:)?(\d+)\.\d+\.\d+\.\d+$/.exec(host);
  if (v4) return v4[1] === '127';
  // The URL parser writes an IPv4-mapped address in hex: ::ffff:7f00:1 is 127.0.0.1.
  return /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(host);
}

/**
 * Browsers carry authorization codes and connect-session cookies to the public URL: plain HTTP
 * to anything but this machine exposes them on the network (RFC 9700 §4.1.1, §4.1.3).
 */
function checkPublicUrl(config: Config, explicit: boolean): void {
  const url = new URL(config.publicUrl);
  if (url.protocol !== 'http:' || isLoopbackHost(url.hostname) || config.allowInsecureHttp) return;
  const what = explicit ? `is http:// on a non-loopback host (${url.hostname})` : `is unset, and the default http://${url.host} is not on a loopback host`;
  throw new ConfigError(
    `WARRANT_PUBLIC_URL: ${what}; set it to the https:// URL browsers reach, or set WARRANT_ALLOW_INSECURE_HTTP=1 to accept plain HTTP`,
  );
}

function readConfigFile(file: string): Record<string, string> {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`WARRANT_CONFIG: cannot read ${file} (${(err as Error).message.split('\n')[0]})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`WARRANT_CONFIG: ${file} must hold a mapping of setting names to values`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!(k in variables)) throw new ConfigError(`WARRANT_CONFIG: ${file} names an unknown setting ${k}`);
    // A list or mapping (WARRANT_ENTERPRISE_IDPS in YAML) is handed on as the JSON its variable takes.
    out[k] = v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
  return out;
}
