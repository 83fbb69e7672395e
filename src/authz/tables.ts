import type { ColumnType } from 'kysely';
import type { Db } from '../store/index.ts';

// The authorization server's own tables (migration 008), typed here rather than in the store's
// shared schema: nothing outside authz/ reads them.

type Millis = number;

export interface AuthzModelsTable {
  kind: string;
  /** The oidc-provider id, or its hash where the id is a bearer secret (adapter.ts). */
  key: string;
  grant_id: string | null;
  uid: string | null;
  /** Hash of a device flow user code. */
  user_code: string | null;
  expires_at: Millis | null;
  consumed_at: Millis | null;
  /** Refresh tokens: rotations that led to this one. */
  generation: number | null;
  created_at: Millis;
}

export interface AuthzAgentsTable {
  client_id: string;
  owner: string;
  agent_id: string;
  created_at: Millis;
  /** What the owner consented to for this client while this agent lives (migration 016): JSON `Consent` (agents.ts). */
  consent: ColumnType<string | null, string | null | undefined, string | null>;
}

// A type alias, not an interface: Kysely's withTables wants an indexable record.
export type AuthzTables = {
  authz_models: AuthzModelsTable;
  authz_agents: AuthzAgentsTable;
};

/** The store's database (or a transaction on it) seen with the authz tables. */
export const authzTables = (db: Db) => db.withTables<AuthzTables>();
