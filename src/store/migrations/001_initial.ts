import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

// Written once for both dialects: the only difference is the auto-increment key of the audit log.
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const millis = 'bigint' as const;

  await db.schema
    .createTable('keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('created_at', millis, (c) => c.notNull())
    .addColumn('retired_at', millis)
    .execute();

  await db.schema
    .createTable('settings')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('updated_at', millis, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('owners')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('email', 'text')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('created_at', millis, (c) => c.notNull())
    .addColumn('offboarded_at', millis)
    .execute();

  await db.schema
    .createTable('provider_clients')
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('created_at', millis, (c) => c.notNull())
    .addColumn('updated_at', millis, (c) => c.notNull())
    .addPrimaryKeyConstraint('provider_clients_pk', ['provider', 'environment'])
    .execute();

  await db.schema
    .createTable('connections')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('scopes', 'text', (c) => c.notNull())
    .addColumn('requested_scopes', 'text', (c) => c.notNull())
    .addColumn('params', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('expires_at', millis)
    .addColumn('refresh_due_at', millis)
    .addColumn('last_refreshed_at', millis)
    .addColumn('last_error', 'text')
    .addColumn('failure_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', millis)
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', millis, (c) => c.notNull())
    .addColumn('updated_at', millis, (c) => c.notNull())
    .execute();
  // The scheduler's scan: its cost follows the number of due rows, not the table's size.
  await db.schema
    .createIndex('connections_refresh_due')
    .on('connections')
    .column('refresh_due_at')
    .where(sql.ref('refresh_due_at'), 'is not', null)
    .execute();
  await db.schema.createIndex('connections_owner').on('connections').columns(['owner', 'status']).execute();

  await db.schema
    .createTable('secrets')
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('ref', 'text', (c) => c.notNull())
    .addColumn('field', 'text', (c) => c.notNull())
    .addColumn('kek_id', 'text', (c) => c.notNull())
    .addColumn('wrapped_key', 'text', (c) => c.notNull())
    .addColumn('ciphertext', 'text', (c) => c.notNull())
    .addColumn('updated_at', millis, (c) => c.notNull())
    .addPrimaryKeyConstraint('secrets_pk', ['scope', 'ref', 'field'])
    .execute();
  await db.schema.createIndex('secrets_kek').on('secrets').column('kek_id').execute();

  await db.schema
    .createTable('agents')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull().unique())
    .addColumn('key_hash', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('expires_at', millis)
    .addColumn('last_used_at', millis)
    .addColumn('created_at', millis, (c) => c.notNull())
    .addColumn('revoked_at', millis)
    .execute();
  await db.schema.createIndex('agents_owner').on('agents').column('owner').execute();

  await db.schema
    .createTable('grants')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('agent_id', 'text', (c) => c.notNull())
    .addColumn('connection_id', 'text', (c) => c.notNull())
    .addColumn('scopes', 'text', (c) => c.notNull())
    .addColumn('token_export', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', millis, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('grants_agent').on('grants').column('agent_id').execute();
  await db.schema.createIndex('grants_connection').on('grants').column('connection_id').execute();

  await db.schema
    .createTable('connect_sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('scopes', 'text', (c) => c.notNull())
    .addColumn('redirect_to', 'text')
    .addColumn('state_hash', 'text', (c) => c.notNull().unique())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('connection_id', 'text')
    .addColumn('error', 'text')
    .addColumn('expires_at', millis, (c) => c.notNull())
    .addColumn('created_at', millis, (c) => c.notNull())
    .addColumn('completed_at', millis)
    .execute();

  await db.schema
    .createTable('audit_events')
    .addColumn('seq', dialect === 'postgres' ? 'bigserial' : 'integer', (c) =>
      dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
    )
    .addColumn('id', 'text', (c) => c.notNull().unique())
    .addColumn('at', millis, (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('subject', 'text')
    .addColumn('data', 'text', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('audit_subject').on('audit_events').columns(['subject', 'seq']).execute();
  await db.schema.createIndex('audit_type').on('audit_events').columns(['type', 'seq']).execute();

  await db.schema
    .createTable('webhooks')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('events', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('created_at', millis, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('webhook_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', millis)
    .addColumn('last_status', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('created_at', millis, (c) => c.notNull())
    .addColumn('delivered_at', millis)
    .execute();
  await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['status', 'next_attempt_at']).execute();
}
