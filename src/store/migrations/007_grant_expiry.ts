import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // When the owner consented to the grant the connection holds (set on connect and re-connect,
  // kept across refreshes): an absolute refresh-token lifetime (Atlassian 365 days, Intuit 5 years)
  // counts from here. Rows from before this migration take their creation time.
  await db.schema.alterTable('connections').addColumn('grant_started_at', 'bigint').execute();
  await db.updateTable('connections').set({ grant_started_at: sql.ref('created_at') }).execute();
  // The last `credential.expiring` notice sent for this grant ('14d', then '2d'); null again on
  // re-connect. Set by a conditional update, so several instances send each notice once.
  await db.schema.alterTable('connections').addColumn('expiry_notice', 'text').execute();
  // The expiry check's scan: per provider with a lifetime, the grants old enough to be near their end.
  await db.schema.createIndex('connections_grant_started').on('connections').columns(['provider', 'grant_started_at']).execute();
}
