import type { Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // A connection's owner lets another owner's agents be granted it (cross-owner grants are
  // refused otherwise). One row per (connection, owner allowed).
  await db.schema
    .createTable('connection_shares')
    .addColumn('connection_id', 'text', (c) => c.notNull())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('connection_shares_pk', ['connection_id', 'owner'])
    .execute();
  // Agent authentication learns the key ids created since its last look (agents/auth.ts).
  await db.schema.createIndex('agents_created').on('agents').column('created_at').execute();
}
