import type { Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // A connect session (or re-connect link) is opened once: the hash of the token in its URL,
  // cleared by the open that claims it.
  await db.schema.alterTable('connect_sessions').addColumn('start_hash', 'text').execute();
  // The browser that opened it: the hash of the cookie set on that open; the callback requires it.
  await db.schema.alterTable('connect_sessions').addColumn('browser_hash', 'text').execute();
  // For a re-connect link: the connection it re-connects (connection_id then names the outcome).
  await db.schema.alterTable('connect_sessions').addColumn('reconnect_of', 'text').execute();
}
