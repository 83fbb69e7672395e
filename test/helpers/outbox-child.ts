// A Warrant process that commits alerts and is then killed, for the outbox tests
// (test/events/outbox.test.ts). It opens the store named by its environment, registers a webhook,
// commits two matching events — one inside a caller's transaction (how lifecycle events are
// written), one in a transaction of the audit log's own (the embedded writer thread on SQLite) —
// and prints one JSON line. It never publishes them on the bus: the kill lands in the window
// between commit and publication, where the post-commit fan-out used to lose alerts.
// OUTBOX_MODE=deliver also starts the delivery worker (leased for OUTBOX_LEASE_MS), so the parent
// can kill it in the middle of a delivery.
import pino from 'pino';
import { createStore } from '../../src/store/index.ts';
import { parseKeyRing } from '../../src/crypto/index.ts';
import { createAuditLog, createEventBus, createWebhooks } from '../../src/events/index.ts';

const env = process.env;
const ring = parseKeyRing(env.OUTBOX_RING!);
const store = await createStore({
  ring: { current: () => ring },
  ...(env.OUTBOX_DATABASE_URL ? { databaseUrl: env.OUTBOX_DATABASE_URL, pgSchema: env.OUTBOX_PG_SCHEMA } : { dataDir: env.OUTBOX_DATA_DIR }),
});
const audit = createAuditLog({ db: store.db, dialect: store.dialect, sqliteFile: store.sqliteFile, now: Date.now });
const webhooks = createWebhooks({
  store,
  bus: createEventBus(),
  audit,
  logger: pino({ level: 'silent' }),
  leaseMs: Number(env.OUTBOX_LEASE_MS ?? 60_000),
  fetchTimeoutMs: 60_000,
  pollIntervalMs: 50,
  allowedNetworks: ['127.0.0.0/8'], // the test's receiver
});
const hook = await webhooks.create(env.OUTBOX_HOOK_URL!, ['connection.*']);
const [inTrx] = await store.transaction((trx) =>
  audit.append({ type: 'connection.reauth_required', actor: 'scheduler', subject: 'connection:con_killed', data: { error: 'invalid_grant' } }, trx),
);
const [own] = await audit.append({ type: 'connection.refresh_failing', actor: 'scheduler', subject: 'connection:con_killed', data: { kind: 'transient' } });
process.stdout.write(`${JSON.stringify({ hook: hook.id, events: [inTrx!.id, own!.id] })}\n`);
if (env.OUTBOX_MODE === 'deliver') webhooks.start();
setInterval(() => {}, 60_000); // wait for the SIGKILL
