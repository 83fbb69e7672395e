import type { Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // SCIM 2.0 Users (src/scim): one row per owner an identity provider sees. `id` is the stable
  // SCIM id (a UUID; the owner id is the userName); `attributes` holds the profile the IdP sent
  // (displayName, name, emails … as JSON; never a password). Whether the user is active is the
  // owner's status. A deleted SCIM user keeps its row with `deleted_at` (RFC 7644 §3.6: 404 after).
  await db.schema
    .createTable('scim_users')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('owner', 'text', (c) => c.notNull().unique())
    .addColumn('external_id', 'text')
    .addColumn('attributes', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('deleted_at', 'bigint')
    .execute();
  await db.schema.createIndex('scim_users_external_id').on('scim_users').column('external_id').execute();
}
