import type { Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // The audit chain's sealed head (src/events/chain.ts, `sealOf`): the last entry's seq, id and hash
  // under an HMAC of the chain key, rewritten with every append in the same transaction. A chain
  // alone cannot show that its newest entries were deleted; the seal names the entry that must be
  // there. One row (`id` = 'head').
  await db.schema
    .createTable('audit_seal')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('mac', 'text', (c) => c.notNull())
    .execute();
  // Exports with `since` (GET /v1/audit/export) find their first entry by time.
  await db.schema.createIndex('audit_at').on('audit_events').columns(['at', 'seq']).execute();
}
