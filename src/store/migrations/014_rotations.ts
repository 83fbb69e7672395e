import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // Rotation schedules (src/tokens/rotation-schedules.ts). When the connection's long-lived
  // credential was issued: its refresh token (connect, re-connect, a refresh that returned a new
  // one) or its JWT-bearer private key (import, a completed key rotation). Rows from before this
  // migration take the grant's start: their credential is at least that old as far as we know.
  await db.schema.alterTable('connections').addColumn('credential_issued_at', 'bigint').execute();
  await db
    .updateTable('connections')
    .set({ credential_issued_at: sql`coalesce(grant_started_at, created_at)` })
    .execute();
  // The rotation pass's scan: per provider, the credentials older than its schedule.
  await db.schema.createIndex('connections_credential_issued').on('connections').columns(['provider', 'credential_issued_at']).execute();

  // Rotations in progress and credentials tracked outside `connections`, one row per credential:
  //   kind `private_key`   ref = connection id: a new key pair pending until seen working
  //   kind `refresh_token` ref = connection id: the old refresh token awaits its check (grace
  //                        period), or the last forced refresh failed (retry time)
  //   kind `client_secret` ref = `provider/environment`: its age, from a keyed fingerprint
  // Secrets never live here: a pending private key or a previous refresh token is sealed in
  // `secrets` (scope `connection`), the fingerprint is an HMAC under a key sealed there too.
  await db.schema
    .createTable('credential_rotations')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('ref', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('issued_at', 'bigint')
    .addColumn('fingerprint', 'text')
    .addColumn('previous_fingerprint', 'text')
    .addColumn('started_at', 'bigint')
    .addColumn('public_key', 'text')
    .addColumn('verify_after', 'bigint')
    .addColumn('notice', 'text')
    .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint')
    .addColumn('last_error', 'text')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('credential_rotations_pk', ['kind', 'ref'])
    .execute();
}
