// The parent's side of setting up: options, the provider definition, Warrant's environment per
// store, and the throwaway PostgreSQL schema (created before, dropped after: the way the tests and
// bench/soak isolate a run, libpq `options=-c search_path=<schema>` in DATABASE_URL).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { stringify } from 'yaml';

export type StoreKind = 'sqlite' | 'postgres';

export interface BenchOptions {
  stores: StoreKind[];
  concurrencies: number[];
  rounds: number;
  roundMs: number;
  warmMs: number;
  databaseUrl?: string;
  redisUrl?: string;
  json: boolean;
  cpuProfDir?: string;
  countQueries: boolean;
  /** Warrant's audit flush interval, ms (default: Warrant's own). */
  auditFlushMs?: number;
}

export const usage =
  'usage: node --import tsx bench/proxy.ts [--store sqlite,postgres] [--concurrency 1,8,32,128] [--rounds 5] ' +
  '[--round-seconds 2] [--warm-seconds 1] [--database-url postgres://…] [--redis redis://…] [--json] ' +
  '[--cpu-prof <dir>] [--count-queries] [--audit-flush-ms <ms>]';

export function parseOptions(argv: string[]): BenchOptions | undefined {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      store: { type: 'string', default: 'sqlite' },
      concurrency: { type: 'string', default: '1,8,32,128' },
      rounds: { type: 'string', default: '5' },
      'round-seconds': { type: 'string', default: '2' },
      'warm-seconds': { type: 'string', default: '1' },
      'database-url': { type: 'string' },
      redis: { type: 'string' },
      json: { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      'count-queries': { type: 'boolean', default: false },
      'audit-flush-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (a.help) return undefined;
  const stores = a.store.split(',').map((s) => s.trim()) as StoreKind[];
  const o: BenchOptions = {
    stores,
    concurrencies: a.concurrency.split(',').map(Number),
    rounds: Number(a.rounds),
    roundMs: Number(a['round-seconds']) * 1000,
    warmMs: Number(a['warm-seconds']) * 1000,
    databaseUrl: a['database-url'] ?? process.env.WARRANT_TEST_DATABASE_URL ?? process.env.DATABASE_URL,
    redisUrl: a.redis,
    json: a.json,
    cpuProfDir: a['cpu-prof'],
    countQueries: a['count-queries'],
    auditFlushMs: a['audit-flush-ms'] === undefined ? undefined : Number(a['audit-flush-ms']),
  };
  const bad =
    !stores.length ||
    stores.some((s) => s !== 'sqlite' && s !== 'postgres') ||
    o.concurrencies.some((c) => !Number.isInteger(c) || c < 1) ||
    !Number.isInteger(o.rounds) ||
    o.rounds < 1 ||
    !(o.roundMs > 0) ||
    !(o.warmMs >= 0) ||
    (o.auditFlushMs !== undefined && !(o.auditFlushMs >= 0));
  if (bad) throw new Error(usage);
  if (stores.includes('postgres') && !o.databaseUrl) throw new Error('--store postgres needs --database-url or WARRANT_TEST_DATABASE_URL');
  return o;
}

/** A scratch directory with the provider definition whose API is the upstream. */
export function writeProvider(upstreamOrigin: string): { dir: string; providersFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-bench-proxy-'));
  const providersFile = join(dir, 'bench.yaml');
  // The IdP URLs are never called: the imported token outlives the run and has no refresh token.
  const definition = {
    id: 'bench',
    name: 'Bench upstream',
    auth: 'oauth2',
    client_id: 'bench-client',
    client_secret: 'bench-secret',
    environments: {
      production: {
        authorization_url: `${upstreamOrigin}/oauth/authorize`,
        token_url: `${upstreamOrigin}/oauth/token`,
        api_base_url: `${upstreamOrigin}/api`,
      },
    },
    scope_separator: ' ',
    scopes: { 'items:read': [{ method: 'GET', path: '/items' }, { method: 'GET', path: '/items/**' }] },
  };
  writeFileSync(providersFile, stringify(definition));
  return { dir, providersFile };
}

export interface StoreEnv {
  env: Record<string, string>;
  label: string;
  /** Drops what was created for this store (the PostgreSQL schema). */
  cleanup(): Promise<void>;
}

/** Warrant's environment for one store: a data dir of its own, or a fresh PostgreSQL schema. */
export async function storeEnv(kind: StoreKind, o: BenchOptions, scratch: string, providersFile: string): Promise<StoreEnv> {
  const dataDir = mkdtempSync(join(scratch, `${kind}-`));
  const env: Record<string, string> = {
    WARRANT_DATA_DIR: dataDir,
    WARRANT_ADMIN_TOKEN: `bench-admin-${randomBytes(16).toString('hex')}`,
    WARRANT_MASTER_KEY: `k1:${randomBytes(32).toString('base64')}`,
    WARRANT_HOST: '127.0.0.1',
    WARRANT_PORT: '0',
    WARRANT_PROVIDERS: providersFile,
    WARRANT_LOG_LEVEL: 'error',
    // One agent on one connection is a load test, far past the default rates: raised out of the
    // way, not turned off, so the limiter still runs on every call.
    WARRANT_AGENT_RATE_PER_SECOND: '1000000',
    WARRANT_CONNECTION_RATE_PER_SECOND: '1000000',
    // The default caps (64 calls in flight per agent, 128 per connection) would answer 429 at c=128.
    WARRANT_AGENT_CONCURRENCY: '1024',
    WARRANT_CONNECTION_CONCURRENCY: '1024',
    ...(o.redisUrl ? { REDIS_URL: o.redisUrl } : {}),
  };
  if (kind === 'sqlite') return { env, label: 'embedded SQLite', cleanup: async () => {} };
  const schema = `bench_proxy_${randomBytes(6).toString('hex')}`;
  await adminQuery(o.databaseUrl!, `create schema "${schema}"`);
  const u = new URL(o.databaseUrl!);
  u.searchParams.set('options', `-c search_path=${schema}`);
  u.searchParams.set('application_name', 'warrant_bench_proxy');
  env.DATABASE_URL = u.href;
  return { env, label: `PostgreSQL (schema ${schema})`, cleanup: () => adminQuery(o.databaseUrl!, `drop schema if exists "${schema}" cascade`) };
}

async function adminQuery(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
