// Warrant at scale on PostgreSQL: seeds N connections (default 1,000,000) in a fresh schema, and
// a 10,000-connection schema beside it as the baseline, then reports
//   1. the scheduler tick's database cost at 10k and at N, and the ratio, with EXPLAIN ANALYZE of
//      the tick's queries (bench/scale/tick.ts);
//   2. the memory of one Warrant instance (its own process) cold and with its caches warm for the
//      active connections (default 10,000: 1,000 agents × 10 grants), per active connection
//      (bench/scale/instance.ts);
//   3. the store's bytes per connection (connections + secrets, heap, TOAST and indexes) and the
//      audit log's bytes per entry after the warm-up's proxy calls;
//   4. with --redis, Redis used_memory before and with the instance warm (REDIS_URL set).
// Both schemas are dropped at the end.
//
//   node --import tsx bench/scale.ts [--connections 1000000] [--active 10000] [--reps 21]
//                                    [--database-url postgres://…] [--redis [--redis-url redis://…]] [--json]
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import pg from 'pg';
import { Redis } from 'ioredis';
import type { Store } from '../src/store/index.ts';
import { keyRingOf, seed } from './scale/seed.ts';
import { measureTicks, planNodes, type TickResult } from './scale/tick.ts';
import { runInstance, type InstanceResult } from './scale/instance.ts';
import { printSummary, type Sizes } from './scale/report.ts';

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '1000000' },
    active: { type: 'string', default: '10000' },
    reps: { type: 'string', default: '21' },
    'database-url': { type: 'string' },
    redis: { type: 'boolean', default: false },
    'redis-url': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});
const usage =
  'usage: node --import tsx bench/scale.ts [--connections 1000000] [--active 10000] [--reps 21] [--database-url postgres://…] [--redis [--redis-url redis://…]] [--json]';
if (args.help) {
  console.log(usage);
  process.exit(0);
}
const N = Number(args.connections);
const ACTIVE = Number(args.active);
const REPS = Number(args.reps);
const BASELINE = 10_000;
const databaseUrl = args['database-url'] || process.env.WARRANT_TEST_DATABASE_URL;
const redisUrl = args.redis ? args['redis-url'] || process.env.WARRANT_TEST_REDIS_URL || process.env.REDIS_URL : undefined;
if (!databaseUrl) throw new Error(`a PostgreSQL URL is needed: --database-url or WARRANT_TEST_DATABASE_URL\n${usage}`);
if (args.redis && !redisUrl) throw new Error(`--redis needs --redis-url or WARRANT_TEST_REDIS_URL\n${usage}`);
if (![N, ACTIVE, REPS].every((x) => Number.isInteger(x) && x > 0) || ACTIVE % 10 || ACTIVE > N) {
  throw new Error(`--connections, --active (a multiple of 10, at most --connections) and --reps are positive integers\n${usage}`);
}
const log = (s: string) => process.stderr.write(`${s}\n`);

const stores: Store[] = [];
const schemas: string[] = [];
async function dropAll(): Promise<void> {
  for (const s of stores.splice(0)) await s.close().catch(() => {});
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    for (const s of schemas.splice(0)) await client.query(`drop schema if exists "${s}" cascade`);
  } finally {
    await client.end();
  }
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void dropAll().finally(() => process.exit(130)));
}

async function tableSizes(store: Store, tables: string[]): Promise<Sizes['tables']> {
  const out: Sizes['tables'] = [];
  for (const t of tables) {
    const r = await sql<{ total: string; heap: string; indexes: string; rows: string }>`
      select pg_total_relation_size(${t}::regclass) as total, pg_relation_size(${t}::regclass) as heap,
             pg_indexes_size(${t}::regclass) as indexes, (select count(*) from ${sql.table(t)}) as rows`.execute(store.db);
    const row = r.rows[0]!;
    const total = Number(row.total);
    const heap = Number(row.heap);
    const indexes = Number(row.indexes);
    out.push({ table: t, rows: Number(row.rows), total, heap, indexes, toast: total - heap - indexes });
  }
  return out;
}

async function redisMemory(url: string): Promise<{ usedMemory: number; keys: number }> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5_000 });
  await r.connect();
  try {
    const info = await r.info('memory');
    const used = Number(/used_memory:(\d+)/.exec(info)?.[1]);
    return { usedMemory: used, keys: await r.dbsize() };
  } finally {
    r.disconnect();
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  const t0 = Date.now();
  const masterKey = `k1:${randomBytes(32).toString('base64')}`;
  const ring = keyRingOf(masterKey);
  const tag = randomBytes(5).toString('hex');
  log(`bench/scale: ${N.toLocaleString('en-US')} connections on PostgreSQL; node ${process.version}, ${cpus().length} CPUs`);

  const bigSchema = `scale_${tag}`;
  schemas.push(bigSchema);
  const big = await seed({ databaseUrl: databaseUrl!, schema: bigSchema, ring, n: N, activeConnections: ACTIVE, t0, log });
  stores.push(big.store);
  const targets = [{ label: `${N.toLocaleString('en-US')}`, n: N, store: big.store }];
  let baselineSeedMs: number | undefined;
  if (N !== BASELINE) {
    const smallSchema = `scale_${tag}_base`;
    schemas.push(smallSchema);
    const small = await seed({ databaseUrl: databaseUrl!, schema: smallSchema, ring, n: BASELINE, activeConnections: Math.min(ACTIVE, BASELINE), t0, log });
    stores.push(small.store);
    baselineSeedMs = small.seedMs;
    targets.unshift({ label: BASELINE.toLocaleString('en-US'), n: BASELINE, store: small.store });
  }

  log('ticks …');
  const ticks: TickResult[] = await measureTicks(targets, REPS);
  const sizes: Sizes = { n: N, tables: await tableSizes(big.store, ['connections', 'secrets', 'owners', 'agents', 'grants']) };

  log(`instance: ${big.agents.length} agents × ${ACTIVE / big.agents.length} grants …`);
  const redisBefore = redisUrl ? await redisMemory(redisUrl) : undefined;
  let redisWarm: { usedMemory: number; keys: number } | undefined;
  let audit: { rows: number; total: number } | undefined;
  const instance: InstanceResult = await runInstance({
    databaseUrl: databaseUrl!,
    schema: bigSchema,
    masterKey,
    redisUrl,
    agents: big.agents,
    log,
    whileWarm: async () => {
      if (redisUrl) redisWarm = await redisMemory(redisUrl);
      const r = await sql<{ rows: string; total: string }>`select count(*) as rows, pg_total_relation_size('audit_events') as total from audit_events`.execute(big.store.db);
      audit = { rows: Number(r.rows[0]!.rows), total: Number(r.rows[0]!.total) };
    },
  });

  const result = {
    command: `node --import tsx bench/scale.ts ${process.argv.slice(2).join(' ')}`.trim(),
    node: process.version,
    cpus: cpus().length,
    connections: N,
    active: ACTIVE,
    seedSeconds: big.seedMs / 1000,
    baselineSeedSeconds: baselineSeedMs === undefined ? undefined : baselineSeedMs / 1000,
    ticks: ticks.map((t) => ({ ...t, claimNodes: planNodes(t.claimPlan), nextDueNodes: planNodes(t.nextDuePlan) })),
    sizes,
    instance,
    audit,
    redis: redisUrl ? { before: redisBefore, warm: redisWarm } : undefined,
    totalSeconds: 0,
  };
  result.totalSeconds = (performance.now() - started) / 1000;
  printSummary(result, args.json ? log : (s) => console.log(s));
  if (args.json) console.log(JSON.stringify(result, null, 2));
}

try {
  await main();
} finally {
  await dropAll();
}
