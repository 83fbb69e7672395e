import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

// One schema for SQLite and PostgreSQL. Portable column choices: times are epoch
// milliseconds (bigint), booleans are 0/1 integers, lists and maps are JSON text.

type Millis = number;
type Json = string;

export interface KeysTable {
  id: string;
  status: 'active' | 'retired';
  created_at: Millis;
  retired_at: Millis | null;
}

/** An instance's lease on sealing with a key (migration 005): renewed while the key is its active one. */
export interface KeyUsageTable {
  instance_id: string;
  key_id: string;
  seen_at: Millis;
  used_until: Millis;
}

export interface SettingsTable {
  name: string;
  value: string;
  updated_at: Millis;
}

export interface OwnersTable {
  id: string;
  email: string | null;
  status: 'active' | 'offboarded';
  created_at: Millis;
  offboarded_at: Millis | null;
}

export interface ProviderClientsTable {
  provider: string;
  environment: string;
  client_id: string;
  created_at: Millis;
  updated_at: Millis;
}

export type ConnectionStatus = 'active' | 'reauth_required' | 'revoked' | 'error';

/** Which `credential.expiring` notice was sent: 14 days, then 2 days before the grant dies for good. */
export type ExpiryNotice = '14d' | '2d';

export interface ConnectionsTable {
  id: string;
  provider: string;
  environment: string;
  owner: string;
  status: ConnectionStatus;
  /** Scopes granted by the IdP. */
  scopes: Json;
  /** Scopes asked for; differs from `scopes` when the IdP granted fewer. */
  requested_scopes: Json;
  /** Values beyond tokens: instance_url, cloud_id, realm_id … */
  params: Json;
  /** The IdP account the grant belongs to, when known (introspection `sub`). */
  subject: ColumnType<string | null, string | null | undefined, string | null>;
  expires_at: Millis | null;
  refresh_due_at: Millis | null;
  last_refreshed_at: Millis | null;
  last_error: string | null;
  failure_count: ColumnType<number, number | undefined, number>;
  next_attempt_at: Millis | null;
  /** Compare-and-swap counter: every token write bumps it. */
  version: ColumnType<number, number | undefined, number>;
  /** Bumped by every claim on the connection's refresh; a write must carry the current one. */
  refresh_fence: ColumnType<number, number | undefined, number>;
  /** Until when the current claimant may be calling the IdP; null when nobody holds a claim. */
  refresh_lease_until: ColumnType<Millis | null, Millis | null | undefined, Millis | null>;
  /** When a refresh's outcome at a rotating provider became unknown (the stored refresh token may be consumed). */
  refresh_indeterminate_at: ColumnType<Millis | null, Millis | null | undefined, Millis | null>;
  /** When the owner consented to the grant held now (connect, re-connect); absolute lifetimes count from here. Null: use created_at. */
  grant_started_at: ColumnType<Millis | null, Millis | null | undefined, Millis | null>;
  /** The last `credential.expiring` notice sent for this grant; null until one is, and again after a re-connect. */
  expiry_notice: ColumnType<ExpiryNotice | null, ExpiryNotice | null | undefined, ExpiryNotice | null>;
  created_at: Millis;
  updated_at: Millis;
}

export interface SecretsTable {
  /** What the secret belongs to: `connection`, `provider_client`, `connect_session`, `webhook` … */
  scope: string;
  ref: string;
  field: string;
  kek_id: string;
  wrapped_key: string;
  ciphertext: string;
  updated_at: Millis;
}

export interface AgentsTable {
  id: string;
  name: string;
  owner: string;
  key_id: string;
  key_hash: string;
  status: 'active' | 'revoked';
  expires_at: Millis | null;
  last_used_at: Millis | null;
  created_at: Millis;
  revoked_at: Millis | null;
  /** Set when the agent is an OAuth client of Warrant's authorization server (src/authz). */
  oauth_client: string | null;
}

export interface GrantsTable {
  id: string;
  agent_id: string;
  connection_id: string;
  scopes: Json;
  token_export: number;
  created_at: Millis;
}

/** A connection's owner allows agents of `owner` to be granted the connection. */
export interface ConnectionSharesTable {
  connection_id: string;
  owner: string;
  created_at: Millis;
}

export interface ConnectSessionsTable {
  id: string;
  provider: string;
  environment: string;
  owner: string;
  scopes: Json;
  params: ColumnType<Json, Json | undefined, Json>;
  redirect_to: string | null;
  state_hash: string;
  status: 'pending' | 'completed' | 'failed' | 'expired';
  connection_id: string | null;
  error: string | null;
  expires_at: Millis;
  created_at: Millis;
  completed_at: Millis | null;
  /** Hash of the single-use token in the session's start URL; null once opened. */
  start_hash: ColumnType<string | null, string | null | undefined, string | null>;
  /** Hash of the browser-binding cookie set when the start URL was opened. */
  browser_hash: ColumnType<string | null, string | null | undefined, string | null>;
  /** A re-connect link's connection. */
  reconnect_of: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface AuditEventsTable {
  seq: Generated<number>;
  id: string;
  at: Millis;
  type: string;
  actor: string;
  subject: string | null;
  data: Json;
  prev_hash: string;
  hash: string;
}

export interface WebhooksTable {
  id: string;
  url: string;
  events: Json;
  status: 'active' | 'disabled';
  created_at: Millis;
}

export interface WebhookDeliveriesTable {
  id: string;
  webhook_id: string;
  event_id: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: Millis | null;
  last_status: number | null;
  last_error: string | null;
  created_at: Millis;
  delivered_at: Millis | null;
}

export interface Database {
  keys: KeysTable;
  key_usage: KeyUsageTable;
  settings: SettingsTable;
  owners: OwnersTable;
  provider_clients: ProviderClientsTable;
  connections: ConnectionsTable;
  secrets: SecretsTable;
  agents: AgentsTable;
  grants: GrantsTable;
  connection_shares: ConnectionSharesTable;
  connect_sessions: ConnectSessionsTable;
  audit_events: AuditEventsTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
}

export type ConnectionRow = Selectable<ConnectionsTable>;
export type NewConnectionRow = Insertable<ConnectionsTable>;
export type ConnectionPatch = Updateable<ConnectionsTable>;
export type SecretRow = Selectable<SecretsTable>;
export type AgentRow = Selectable<AgentsTable>;
export type GrantRow = Selectable<GrantsTable>;
export type ConnectSessionRow = Selectable<ConnectSessionsTable>;
export type AuditEventRow = Selectable<AuditEventsTable>;
export type WebhookRow = Selectable<WebhooksTable>;
