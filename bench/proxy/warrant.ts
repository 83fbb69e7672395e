// (c) Warrant (its own process): createWarrant on the store and Redis the parent chose, a provider
// whose API is the bench's upstream, one connection imported with a long-lived token (no refresh
// during the run), one agent granted items:read on it, scheduler off. With BENCH_COUNT_QUERIES=1,
// every statement the store runs through Kysely is counted (WarrantOptions.onStoreQuery).
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/http/logger.ts';
import { createWarrant, type Warrant } from '../../src/warrant.ts';
import { failRole, serveRole } from './ipc.ts';

export interface WarrantInfo {
  origin: string;
  connection: string;
  agentKey: string;
  dialect: string;
}

/** Statements run so far: the total, and per statement text (parameters are placeholders). */
export interface QueryCounts {
  total: number;
  bySql: Record<string, number>;
}

const counts: QueryCounts = { total: 0, bySql: {} };
const onStoreQuery =
  process.env.BENCH_COUNT_QUERIES === '1'
    ? (sql: string) => {
        counts.total++;
        counts.bySql[sql] = (counts.bySql[sql] ?? 0) + 1;
      }
    : undefined;

async function start(): Promise<void> {
  const env = JSON.parse(process.env.BENCH_WARRANT_ENV ?? '{}') as Record<string, string>;
  const upstreamToken = process.env.BENCH_UPSTREAM_TOKEN ?? '';
  const config = loadConfig(env);
  const warrant: Warrant = await createWarrant(config, { logger: createLogger(config.logLevel), notice: () => {}, scheduler: false,
    onStoreQuery,
    ...(process.env.BENCH_AUDIT_FLUSH_MS ? { auditFlushIntervalMs: Number(process.env.BENCH_AUDIT_FLUSH_MS) } : {}),
  });
  try {
    const origin = new URL(await warrant.listen()).origin;
    const admin = { authorization: `Bearer ${env.WARRANT_ADMIN_TOKEN}` };
    const imported = await warrant.app.inject({
      method: 'POST',
      url: '/v1/connections',
      headers: admin,
      payload: { provider: 'bench', owner: 'bench@example.com', access_token: upstreamToken, expires_in: 30 * 24 * 3600, scopes: ['items:read'] },
    });
    if (imported.statusCode !== 201) throw new Error(`connection import failed: ${imported.statusCode} ${imported.body}`);
    const connection = imported.json().id as string;
    const created = await warrant.app.inject({
      method: 'POST',
      url: '/v1/agents',
      headers: admin,
      payload: { name: 'bench', owner: 'bench@example.com', grants: [{ connection, scopes: ['items:read'] }] },
    });
    if (created.statusCode !== 201) throw new Error(`agent creation failed: ${created.statusCode} ${created.body}`);
    const info: WarrantInfo = { origin, connection, agentKey: created.json().api_key as string, dialect: warrant.store.dialect };
    serveRole(
      { ...info },
      {
        queries: () => ({ total: counts.total, bySql: { ...counts.bySql } }),
        /** proxy.call entries in the store once the queue is flushed. */
        audited: async () => {
          await warrant.auditQueue.flush();
          const r = await warrant.store.db
            .selectFrom('audit_events')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('type', '=', 'proxy.call')
            .executeTakeFirstOrThrow();
          return Number(r.n);
        },
      },
      async () => {
        await warrant.close({ graceMs: 5_000 });
      },
    );
  } catch (err) {
    await warrant.close({ graceMs: 1_000 }).catch(() => {});
    throw err;
  }
}

start().catch(failRole);
