import type { Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // The store's own claim on a connection's refresh: `refresh_fence` (002) becomes a counter bumped
  // by every claim, and the lease says until when the claimant may call the IdP. Whatever happens
  // to the lock service (Redis flushed, a lock session terminated), two holders never refresh one
  // connection at once, and a holder whose claim was overtaken cannot write.
  await db.schema.alterTable('connections').addColumn('refresh_lease_until', 'bigint').execute();
  // A refresh whose outcome is unknown (sent, then timed out; or a 200 that could not be
  // processed) at a provider that rotates refresh tokens: the stored one may be consumed.
  await db.schema.alterTable('connections').addColumn('refresh_indeterminate_at', 'bigint').execute();
}
