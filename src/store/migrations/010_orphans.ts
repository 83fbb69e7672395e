import type { Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // Orphans (agents/orphans.ts): when the `agent.orphaned` event was sent for the agent's current
  // orphan episode. Claimed by a conditional update, so instances send it once; cleared by the sweep
  // once the agent is no longer an orphan (a later episode sends a new one).
  await db.schema.alterTable('agents').addColumn('orphaned_at', 'bigint').execute();
  // A suspended agent (status `suspended`): when, and why (JSON list: orphan reasons or `admin`).
  await db.schema.alterTable('agents').addColumn('suspended_at', 'bigint').execute();
  await db.schema.alterTable('agents').addColumn('suspended_reasons', 'text').execute();
  // The scope review (agents/review.ts) reads, per agent, its proxied calls in a time window.
  await db.schema.createIndex('audit_type_actor_at').on('audit_events').columns(['type', 'actor', 'at']).execute();
}
