import type { Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // Which instance seals with which key-encryption key, and until when it may (a lease the instance
  // renews while the key is its active one). A key is retired only once no lease on it is current:
  // one process's view of the key ring no longer decides for all of them.
  await db.schema
    .createTable('key_usage')
    .addColumn('instance_id', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('seen_at', 'bigint', (c) => c.notNull())
    .addColumn('used_until', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('key_usage_pk', ['instance_id', 'key_id'])
    .execute();
  await db.schema.createIndex('key_usage_key').on('key_usage').columns(['key_id', 'used_until']).execute();
}
