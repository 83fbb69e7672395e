import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { defaults } from './defaults.ts';

export { defaults };

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const httpUrl = z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' });

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
  WARRANT_CONFIG: z.string().min(1),
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
  /** `embedded` = SQLite in the data dir; `postgres` = DATABASE_URL. */
  storeKind: 'embedded' | 'postgres';
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
    storeKind: parsed.DATABASE_URL ? 'postgres' : 'embedded',
  };
  if (config.storeKind === 'postgres' && !config.masterKey) {
    throw new ConfigError('WARRANT_MASTER_KEY: required with DATABASE_URL (a generated key is for the embedded mode only)');
  }
  return Object.freeze(config);
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
    out[k] = String(v);
  }
  return out;
}
