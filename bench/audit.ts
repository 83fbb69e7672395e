// Audit entries written per second on PostgreSQL: the one-statement writer (src/events/audit-pg.ts)
// against the transaction path (lock, read head, insert, sequence, seal, outbox: audit.ts
// `appendIn`), side by side in one run, one batch at a time as the audit queue writes them.
//
//   DATABASE_URL=postgres://… npm run bench:audit -- [--seconds 2] [--rounds 3]
//
// Runs in a throwaway schema, dropped at the end. Rounds alternate the two paths so that load from
// elsewhere on the machine falls on both.
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createStore } from '../src/store/index.ts';
import { parseKeyRing } from '../src/crypto/index.ts';
import { createAuditLog, loadChainKey, type AuditLog } from '../src/events/index.ts';

const { values: args } = parseArgs({
  options: { seconds: { type: 'string', default: '2' }, rounds: { type: 'string', default: '3' }, sizes: { type: 'string', default: '1,10,100' } },
});
const url = process.env.DATABASE_URL ?? process.env.WARRANT_TEST_DATABASE_URL;
if (!url) {
  console.error('set DATABASE_URL (or WARRANT_TEST_DATABASE_URL) to a PostgreSQL database the bench may create a schema in');
  process.exit(2);
}
const seconds = Number(args.seconds);
const rounds = Number(args.rounds);
const sizes = args.sizes.split(',').map(Number);

const schema = `bench_audit_${randomBytes(4).toString('hex')}`;
const ring = parseKeyRing(randomBytes(32).toString('base64'));
const store = await createStore({ databaseUrl: url, pgSchema: schema, ring: { current: () => ring }, poolSize: 4 });

async function main(): Promise<void> {
  const { chain } = await loadChainKey({ vault: store.vault, db: store.db, dialect: 'postgres' });
  const logs: Record<'transaction' | 'one statement', AuditLog> = {
    transaction: createAuditLog({ db: store.db, dialect: 'postgres', now: Date.now, chain }),
    'one statement': createAuditLog({ db: store.db, dialect: 'postgres', now: Date.now, chain, pgPool: store.sidePool!(2) }),
  };
  const entry = (i: number) => ({
    type: 'proxy.call',
    actor: 'agent:agt_0123456789abcdef',
    subject: 'connection:con_0123456789abcdef',
    data: { method: 'GET', path: '/items', scope: 'items:read', status: 200, code: null, retries: 0, refreshed: false, duration_ms: 1.2, request_id: `req_${i}` },
  });

  /** Entries per second over `seconds`, writing batches of `size` one after the other. */
  async function run(log: AuditLog, size: number): Promise<number> {
    await log.append(Array.from({ length: size }, (_, i) => entry(i))); // warm: connection, head
    let written = 0;
    const start = performance.now();
    const end = start + seconds * 1000;
    while (performance.now() < end) {
      await log.append(Array.from({ length: size }, (_, i) => entry(written + i)));
      written += size;
    }
    return written / ((performance.now() - start) / 1000);
  }

  console.log(`audit writes on PostgreSQL: entries/s, ${rounds} alternating rounds of ${seconds}s per path and batch size (median)`);
  console.log('batch  transaction  one statement  ratio');
  for (const size of sizes) {
    const rates: Record<string, number[]> = { transaction: [], 'one statement': [] };
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? (['one statement', 'transaction'] as const) : (['transaction', 'one statement'] as const);
      for (const name of order) rates[name]!.push(await run(logs[name], size));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const old = median(rates.transaction!);
    const now = median(rates['one statement']!);
    console.log(`${String(size).padStart(5)}  ${old.toFixed(0).padStart(11)}  ${now.toFixed(0).padStart(13)}  ${(now / old).toFixed(2)}x`);
  }
  const verified = await logs['one statement'].verify(5000);
  console.log(`chain verifies: ${verified.ok} (${verified.entries} entries)`);
  for (const log of Object.values(logs)) await log.close();
}

try {
  await main();
} finally {
  await store.close();
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`drop schema if exists "${schema}" cascade`);
  await admin.end();
}
