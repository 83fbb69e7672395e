import type { Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // Warrant's own authorization server (src/authz): one row per oidc-provider model instance. `key`
  // is a hash of the id wherever the id is a bearer secret (codes, refresh tokens, sessions …); the
  // payload itself is sealed in `secrets` (scope `authz`), so key rotation re-wraps it like any secret.
  await db.schema
    .createTable('authz_models')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('grant_id', 'text')
    .addColumn('uid', 'text')
    .addColumn('user_code', 'text')
    .addColumn('expires_at', 'bigint')
    .addColumn('consumed_at', 'bigint')
    // Refresh tokens: how many rotations led to this one (0 from the code). The rotation grace
    // (src/authz/adapter.ts) keeps a consumed token usable until a later generation is used.
    .addColumn('generation', 'integer')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('authz_models_pk', ['kind', 'key'])
    .execute();
  await db.schema.createIndex('authz_models_grant').on('authz_models').column('grant_id').execute();
  await db.schema.createIndex('authz_models_uid').on('authz_models').columns(['kind', 'uid']).execute();
  await db.schema.createIndex('authz_models_user_code').on('authz_models').columns(['kind', 'user_code']).execute();
  await db.schema.createIndex('authz_models_expiry').on('authz_models').column('expires_at').execute();

  // An agent that is an OAuth client of the authorization server: its reason to exist is the client's
  // registration and its owner's consent, not a connection grant (it is no orphan for having none).
  await db.schema.alterTable('agents').addColumn('oauth_client', 'text').execute();

  // A client that an owner consented to is an agent of that owner (one agent per client and owner).
  await db.schema
    .createTable('authz_agents')
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('agent_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('authz_agents_pk', ['client_id', 'owner'])
    .execute();
  await db.schema.createIndex('authz_agents_agent').on('authz_agents').column('agent_id').execute();
}
