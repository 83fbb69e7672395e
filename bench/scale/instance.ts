// One Warrant instance (bench/scale/child.ts, its own process) on the seeded schema, warmed up with
// proxy calls through every active connection, each by the agent its owner holds: heap and RSS
// cold, after the first 10% of the connections, after all of them, and after a second pass.
// The upstream is a tiny node:http API in this process; the load comes from this process too.
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { Pool } from 'undici';
import { PROVIDERS, type SeededAgent } from './seed.ts';

const ITEMS = JSON.stringify({ items: [{ id: 'itm_1', name: 'first item', owner: 'someone' }, { id: 'itm_2', name: 'second item', owner: 'someone' }] });
const CONCURRENCY = 16;
const CALL_DEADLINE_MS = 30_000;

export interface MemoryPoint {
  label: string;
  connections: number;
  heapUsed: number;
  rss: number;
  external: number;
}

export interface InstanceResult {
  points: MemoryPoint[];
  calls: number;
  callsPerSecond: number;
}

function startUpstream(): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(ITEMS) });
    res.end(ITEMS);
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, origin: `http://127.0.0.1:${(server.address() as { port: number }).port}` })));
}

function providersFile(dir: string, origin: string): string {
  const defs = Array.from({ length: PROVIDERS }, (_, p) => ({
    id: `scale-${p}`,
    name: `Scale bench API ${p}`,
    auth: 'oauth2',
    client_id: 'scale-bench',
    client_secret: 'scale-bench-secret',
    environments: { production: { authorization_url: `${origin}/authorize`, token_url: `${origin}/token`, api_base_url: origin } },
    scopes: { 'items:read': [{ method: 'GET', path: '/items' }], 'items:write': [{ method: 'POST', path: '/items' }] },
  }));
  const file = join(dir, 'providers.yaml');
  writeFileSync(file, stringify(defs));
  return file;
}

export async function runInstance(opts: {
  databaseUrl: string;
  schema: string;
  masterKey: string;
  redisUrl?: string;
  agents: SeededAgent[];
  log: (s: string) => void;
  /** Called while the instance still runs, after the warm-up (Redis INFO, audit size). */
  whileWarm?: () => Promise<void>;
}): Promise<InstanceResult> {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-bench-scale-'));
  const upstream = await startUpstream();
  const url = new URL(opts.databaseUrl);
  url.searchParams.set('options', `-c search_path=${opts.schema}`);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? dir,
    DATABASE_URL: url.href,
    WARRANT_DATA_DIR: dir,
    WARRANT_MASTER_KEY: opts.masterKey,
    WARRANT_ADMIN_TOKEN: `bench-admin-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    WARRANT_HOST: '127.0.0.1',
    WARRANT_PORT: '0',
    WARRANT_PROVIDERS: providersFile(dir, upstream.origin),
    WARRANT_LOG_LEVEL: 'error',
    WARRANT_AGENT_RATE_PER_SECOND: '1000000',
    WARRANT_CONNECTION_RATE_PER_SECOND: '1000000',
    ...(opts.redisUrl ? { REDIS_URL: opts.redisUrl } : {}),
  };
  const child: ChildProcess = fork(fileURLToPath(new URL('./child.ts', import.meta.url)), [], { env, execArgv: ['--import', 'tsx'], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let nextId = 0;
  const ask = <T>(type: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => reject(new Error(`instance: no answer to ${type} in 60 s`)), 60_000);
      const on = (m: { id?: number; error?: string }) => {
        if (m.id !== id) return;
        child.off('message', on);
        clearTimeout(timer);
        if (m.error) reject(new Error(m.error));
        else resolve(m as T);
      };
      child.on('message', on);
      child.send({ type, id });
    });
  let pool: Pool | undefined;
  try {
    const origin = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('instance: not ready in 120 s')), 120_000);
      child.once('message', (m: { type: string; url: string }) => {
        clearTimeout(timer);
        resolve(new URL(m.url).origin);
      });
      child.once('exit', (code) => reject(new Error(`instance exited (${code}) before it was ready`)));
    });
    pool = new Pool(origin, { connections: CONCURRENCY, pipelining: 1, keepAliveTimeout: 60_000 });
    const p = pool;
    const calls = opts.agents.flatMap((a) => a.connections.map((c) => ({ key: a.apiKey, connection: c })));
    let failures = 0;
    let firstFailure = '';
    const drive = async (from: number, to: number) => {
      let next = from;
      const worker = async () => {
        for (let i = next++; i < to; i = next++) {
          const c = calls[i]!;
          const res = await p.request({ path: `/v1/proxy/${c.connection}/items`, method: 'GET', headers: { authorization: `Bearer ${c.key}` }, headersTimeout: CALL_DEADLINE_MS, bodyTimeout: CALL_DEADLINE_MS });
          const body = await res.body.text();
          if (res.statusCode !== 200) {
            failures++;
            firstFailure ||= `${res.statusCode} ${body.slice(0, 300)}`;
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      if (failures) throw new Error(`${failures} proxy calls failed; first: ${firstFailure}`);
    };
    const points: MemoryPoint[] = [];
    const measure = async (label: string, connections: number) => {
      const { memory } = await ask<{ memory: NodeJS.MemoryUsage }>('memory');
      points.push({ label, connections, heapUsed: memory.heapUsed, rss: memory.rss, external: memory.external });
      opts.log(`  instance ${label}: heap ${(memory.heapUsed / 2 ** 20).toFixed(1)} MiB, rss ${(memory.rss / 2 ** 20).toFixed(1)} MiB`);
    };
    await measure('cold', 0);
    // First 10%: pays the one-off costs (JIT, pools, sockets); the next 90% show the per-connection cost.
    const tenth = Math.max(1, Math.floor(calls.length / 10));
    await drive(0, tenth);
    await measure('warm 10%', tenth);
    const t0 = performance.now();
    await drive(tenth, calls.length);
    const ms = performance.now() - t0;
    await measure('warm 100%', calls.length);
    await drive(0, calls.length);
    await measure('second pass', calls.length);
    await ask('flush');
    await opts.whileWarm?.();
    return { points, calls: 2 * calls.length, callsPerSecond: ((calls.length - tenth) * 1000) / ms };
  } finally {
    await pool?.close();
    if (child.exitCode === null) {
      await ask('close').catch(() => child.kill('SIGKILL'));
      await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
    }
    upstream.server.closeAllConnections();
    await new Promise((r) => upstream.server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
}
