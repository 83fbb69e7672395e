import type { Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // GET /v1/status (admin/status.ts): the counts by status read this index alone (no table rows),
  // and the failing connections (reauth_required, error), newest first, are a range of it with a
  // LIMIT, however many connections are active.
  await db.schema.createIndex('connections_status_updated').on('connections').columns(['status', 'updated_at']).execute();
}
