import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { startSandbox, type Sandbox, type SandboxOptions } from '../../src/sandbox/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant, type Warrant, type WarrantOptions } from '../../src/warrant.ts';
import { captureLogger, ADMIN_TOKEN } from './app.ts';
import { createSchema, dropSchema, testDatabaseUrl, testRedisUrl } from './stores.ts';

export interface LifecycleEnv {
  sandbox: Sandbox;
  warrant: Warrant;
  logs: ReturnType<typeof captureLogger>;
  providersFile: string;
  env: Record<string, string>;
  /** Runs the whole authorization code + PKCE flow through the sandbox; returns the connection id. */
  connect(owner?: string, scopes?: string[]): Promise<string>;
  /** The same flow for another provider id registered in the catalog (a variant of the sandbox). */
  connectTo(provider: string, owner?: string, scopes?: string[]): Promise<string>;
  cleanup(): Promise<void>;
}

export interface LifecycleOptions {
  sandbox?: SandboxOptions;
  store?: 'sqlite' | 'postgres';
  redis?: boolean;
  env?: Record<string, string>;
  scheduler?: boolean;
  /** Level of the captured logger (default warn). */
  logLevel?: string;
  /** PostgreSQL `application_name` of the instance's sessions (to find them in pg_stat_activity). */
  pgApplicationName?: string;
  /** More catalog entries, written beside the sandbox's own (e.g. `{ extends: 'sandbox', id: … }` variants). */
  providers?: Record<string, unknown>[];
  /** Reuse an existing sandbox (several Warrant instances against one IdP). */
  sharedSandbox?: Sandbox;
  /** Reuse an existing data location (a second instance on the same store). */
  shared?: { dataDir?: string; pgSchema?: string; masterKey: string; providersFile: string };
  /** Lifetimes of Warrant's authorization server (e.g. short access tokens, so clients refresh). */
  authzTtl?: WarrantOptions['authzTtl'];
  /** Warrant's clock (an injected one moves days ahead without waiting); the sandbox keeps real time. */
  now?: () => number;
  /** Called with each statement the instance's store runs (counting queries). */
  onStoreQuery?: WarrantOptions['onStoreQuery'];
}

export async function startLifecycle(opts: LifecycleOptions = {}): Promise<LifecycleEnv> {
  const sandbox = opts.sharedSandbox ?? (await startSandbox({ accessTokenTtl: 5, ...opts.sandbox }));
  const dir = mkdtempSync(join(tmpdir(), 'warrant-life-'));
  const providersFile = opts.shared?.providersFile ?? join(dir, 'sandbox.yaml');
  if (!opts.shared) writeFileSync(providersFile, stringify([sandbox.providerDefinition('sandbox'), ...(opts.providers ?? [])]));
  const masterKey = opts.shared?.masterKey ?? `k1:${randomBytes(32).toString('base64')}`;
  const pgSchema = opts.store === 'postgres' ? (opts.shared?.pgSchema ?? `t_${randomBytes(6).toString('hex')}`) : undefined;
  const env: Record<string, string> = {
    WARRANT_DATA_DIR: opts.shared?.dataDir ?? dir,
    WARRANT_ADMIN_TOKEN: ADMIN_TOKEN,
    WARRANT_MASTER_KEY: masterKey,
    WARRANT_PORT: '0',
    WARRANT_PROVIDERS: providersFile,
    WARRANT_HTTP_TIMEOUT_MS: '5000',
    WARRANT_SCHEDULER_INTERVAL_MS: '250',
    ...(pgSchema ? { DATABASE_URL: withSchema(testDatabaseUrl!, pgSchema, opts.pgApplicationName) } : {}),
    ...(opts.redis ? { REDIS_URL: testRedisUrl! } : {}),
    ...opts.env,
  };
  if (pgSchema && !opts.shared) await createSchema(pgSchema);
  const logs = captureLogger(opts.logLevel ?? 'warn');
  const warrant = await createWarrant(loadConfig(env), { logger: logs.logger, notice: () => {}, scheduler: opts.scheduler ?? false, authzTtl: opts.authzTtl, now: opts.now, onStoreQuery: opts.onStoreQuery });
  await warrant.listen();
  async function connectTo(provider: string, owner = 'alice@example.com', scopes = ['items:read', 'items:write']): Promise<string> {
    const session = await warrant.connect.createSession({ provider, owner, scopes });
    // As a browser would: the start URL sets the binding cookie and sends it on to the IdP.
    const opened = await warrant.connect.openLink(session.authorize_url);
    const redirect = await sandbox.authorize(Object.fromEntries(new URL(opened.location).searchParams) as never);
    // Delivered where the IdP sent it: the provider's own callback path.
    const back = new URL(redirect);
    const outcome = await warrant.connect.handleCallback(back.searchParams, opened.cookieHeader, back.pathname);
    if (!outcome.connection) throw new Error(`connect failed: ${outcome.session.error}`);
    return outcome.connection.id;
  }
  return {
    sandbox,
    warrant,
    logs,
    providersFile,
    env: { ...env, ...(pgSchema ? { WARRANT_TEST_PG_SCHEMA: pgSchema } : {}) },
    connect: (owner = 'alice@example.com', scopes = ['items:read', 'items:write']) => connectTo('sandbox', owner, scopes),
    connectTo,
    async cleanup() {
      await warrant.close();
      if (!opts.sharedSandbox) await sandbox.close();
      if (pgSchema && !opts.shared) await dropSchema(pgSchema);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A PostgreSQL URL whose connections use `schema` (libpq `options`). */
export function withSchema(url: string, schema: string, applicationName?: string): string {
  const u = new URL(url);
  u.searchParams.set('options', `-c search_path=${schema}`);
  if (applicationName) u.searchParams.set('application_name', applicationName);
  return u.href;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually<T>(fn: () => Promise<T> | T, timeoutMs = 10_000, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(everyMs);
  }
}

/** Where a listening instance answers on loopback. */
export function baseUrlOf(env: LifecycleEnv): string {
  const a = env.warrant.app.server.address();
  if (!a || typeof a === 'string') throw new Error('Warrant is not listening');
  return `http://127.0.0.1:${a.port}`;
}

/** An admin API call over HTTP with the test admin token; `body` is sent as JSON. */
export async function adminCall(env: LifecycleEnv, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
  const res = await fetch(`${baseUrlOf(env)}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/** The status of a proxied `GET /items` with an agent key (the body read and dropped). */
export async function proxiedStatus(env: LifecycleEnv, key: string, connection: string): Promise<number> {
  const res = await fetch(`${baseUrlOf(env)}/v1/proxy/${connection}/items`, { headers: { authorization: `Bearer ${key}` } });
  await res.arrayBuffer();
  return res.status;
}
