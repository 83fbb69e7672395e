import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  // Tags (store/tags.ts): the ids a product embedding Warrant files a connection or an agent under
  // (its end user, its organization) and free labels, a JSON object of strings. A connect session
  // carries them to the connection it makes. Not secrets: audited and sent in webhooks.
  for (const table of ['connections', 'agents', 'connect_sessions']) {
    await db.schema.alterTable(table).addColumn('end_user', 'text').execute();
    await db.schema.alterTable(table).addColumn('organization', 'text').execute();
    await db.schema.alterTable(table).addColumn('labels', 'text', (c) => c.notNull().defaultTo('{}')).execute();
  }
  for (const table of ['connections', 'agents']) {
    await db.schema.createIndex(`${table}_end_user`).on(table).column('end_user').execute();
    await db.schema.createIndex(`${table}_organization`).on(table).column('organization').execute();
    if (dialect === 'postgres') {
      // Label filters are containment (`@>`) and key existence (`?`) on this expression: a GIN index serves both.
      await sql`create index ${sql.id(`${table}_labels`)} on ${sql.id(table)} using gin ((labels::jsonb))`.execute(db);
    }
  }
}
