import type { Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // What an owner consented to for a client of the authorization server (src/authz/agents.ts): a
  // JSON `{scopes, resources}` accumulated over the owner's consents while the client's agent lives,
  // so a new browser session of the owner is not asked again for what was already allowed. Reset
  // when a revoked agent is replaced by a new one. Scope names and resource URLs only, no token.
  await db.schema.alterTable('authz_agents').addColumn('consent', 'text').execute();
}
