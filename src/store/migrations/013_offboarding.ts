import type { Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // Offboarding an owner (src/agents/offboarding.ts): what happened to each upstream grant the owner
  // held. Revoking a connection deletes it, so the outcome is kept here, committed with the deletion:
  // a second offboarding reports the same state without calling the IdP again. No token material:
  // how the revocation was verified, the IdP's answer status, when.
  await db.schema
    .createTable('offboarded_connections')
    .addColumn('connection_id', 'text', (c) => c.primaryKey())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('revoked', 'integer', (c) => c.notNull())
    .addColumn('verified', 'integer', (c) => c.notNull())
    .addColumn('verification', 'text', (c) => c.notNull())
    .addColumn('detail', 'text', (c) => c.notNull())
    .addColumn('idp_status', 'integer')
    .addColumn('checked_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('offboarded_connections_owner').on('offboarded_connections').column('owner').execute();
}
