import type { Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // The fencing token of the last lock holder that wrote this connection's tokens (Redis locks):
  // a holder that stalled past its lock's TTL carries an older fence and its write is refused.
  await db.schema.alterTable('connections').addColumn('refresh_fence', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
  // The account at the IdP the grant belongs to (RFC 7662 `sub`), when the IdP tells: a re-connect
  // must come back with the same one.
  await db.schema.alterTable('connections').addColumn('subject', 'text').execute();
  // Connection params known before consent (tenant host, cloud id), carried to the callback.
  await db.schema.alterTable('connect_sessions').addColumn('params', 'text', (c) => c.notNull().defaultTo('{}')).execute();
  // Listing and deleting a webhook's deliveries.
  await db.schema.createIndex('webhook_deliveries_webhook').on('webhook_deliveries').columns(['webhook_id', 'created_at']).execute();
}
