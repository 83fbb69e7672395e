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

/**
 * Tags (migration 017, store/tags.ts) of connections, agents and connect sessions: the ids a
 * product embedding Warrant files them under, and free labels (a JSON object of strings).
 */
export interface TagColumns {
  end_user: ColumnType<string | null, string | null | undefined, string | null>;
  organization: ColumnType<string | null, string | null | undefined, string | null>;
  labels: ColumnType<Json, Json | undefined, Json>;
}

export type ConnectionStatus = 'active' | 'reauth_required' | 'revoked' | 'error';

/** Which `credential.expiring` notice was sent: 14 days, then 2 days before the grant dies for good. */
export type ExpiryNotice = '14d' | '2d';

export interface ConnectionsTable extends TagColumns {
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
  /** When the long-lived credential was issued: the refresh token held now, or the JWT-bearer private key (migration 014_i5; rotation schedules). */
  credential_issued_at: ColumnType<Millis | null, Millis | null | undefined, Millis | null>;
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

export interface AgentsTable extends TagColumns {
  id: string;
  name: string;
  owner: string;
  key_id: string;
  key_hash: string;
  /** `suspended` (migration 010): refused with `agent_suspended` until an admin reactivates it. */
  status: 'active' | 'suspended' | 'revoked';
  expires_at: Millis | null;
  last_used_at: Millis | null;
  created_at: Millis;
  revoked_at: Millis | null;
  /** Set when the agent is an OAuth client of Warrant's authorization server (src/authz). */
  oauth_client: string | null;
  /** When `agent.orphaned` was sent for the current orphan episode (agents/orphans.ts); null otherwise. */
  orphaned_at: ColumnType<Millis | null, Millis | null | undefined, Millis | null>;
  /** While suspended: since when. */
  suspended_at: ColumnType<Millis | null, Millis | null | undefined, Millis | null>;
  /** While suspended: why, a JSON list (orphan reasons, or `admin`). */
  suspended_reasons: ColumnType<Json | null, Json | null | undefined, Json | null>;
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

export interface ConnectSessionsTable extends TagColumns {
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

/** The audit chain's sealed head (migration 015_i3, src/events/chain.ts `sealOf`): one row, id 'head'. */
export interface AuditSealTable {
  id: string;
  seq: number;
  event_id: string;
  hash: string;
  /** HMAC-SHA256 under a key derived from the chain key over (seq, event_id, hash). */
  mac: string;
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

/** Scoped admin keys (migration 011_i6, src/admin/keys.ts). */
export interface AdminKeysTable {
  id: string;
  name: string;
  role: 'read' | 'operate' | 'admin';
  /** SHA-256 (base64url) of the key's secret half. */
  key_hash: string;
  /** The audit actor that created it (`admin`, `admin_key:adk_…`). */
  created_by: string;
  created_at: Millis;
  expires_at: Millis | null;
  revoked_at: Millis | null;
  last_used_at: Millis | null;
}

/** SCIM 2.0 Users (migration 012_i2, src/scim): the SCIM id and profile of an owner. */
export interface ScimUsersTable {
  /** The SCIM `id` (a UUID); the owner id is the `userName`. */
  id: string;
  owner: string;
  external_id: string | null;
  /** The profile the IdP sent (displayName, name, emails …), JSON; never a password. */
  attributes: Json;
  created_at: Millis;
  updated_at: Millis;
  /** Deleted through SCIM: 404 from then on (RFC 7644 §3.6); a later POST provisions anew. */
  deleted_at: Millis | null;
}

/** What offboarding did to one upstream grant of an owner (migration 013_i1, src/agents/offboarding.ts). */
export interface OffboardedConnectionsTable {
  connection_id: string;
  owner: string;
  provider: string;
  /** 0/1 */
  revoked: number;
  /** 0/1 */
  verified: number;
  verification: 'introspection' | 'refresh_refused' | 'probe_401' | 'unsupported';
  detail: string;
  /** The HTTP status of the IdP's (or API's) answer the verification rests on; null when none. */
  idp_status: number | null;
  checked_at: Millis;
}

/** Rotations in progress and credentials tracked apart from connections (migration 014_i5, src/tokens/rotation-schedules.ts). */
export interface CredentialRotationsTable {
  kind: 'refresh_token' | 'private_key' | 'client_secret';
  /** The connection id; for a client secret `provider/environment`. */
  ref: string;
  /** `tracked`: nothing under way; `pending`: a new private key awaits its first working token; `verifying`: the old refresh token awaits its check. */
  state: 'tracked' | 'pending' | 'verifying';
  /** Client secrets: when this fingerprint was first seen (its age counts from here). */
  issued_at: Millis | null;
  /** Client secrets: HMAC-SHA256 of the secret under a key sealed in the vault; never the secret. */
  fingerprint: string | null;
  /** Client secrets: the fingerprint before the last change (an instance not yet restarted still holds it). */
  previous_fingerprint: string | null;
  /** When the pending or verifying rotation began. */
  started_at: Millis | null;
  /** A pending private key's public half (SPKI PEM): for upload, not a secret. */
  public_key: string | null;
  /** `verifying`: the old refresh token is checked from this time (after the provider's grace period). */
  verify_after: Millis | null;
  /** The last notice sent about this credential (`14d`, `2d`, `overdue`). */
  notice: string | null;
  failures: ColumnType<number, number | undefined, number>;
  next_attempt_at: Millis | null;
  last_error: string | null;
  updated_at: Millis;
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
  audit_seal: AuditSealTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  offboarded_connections: OffboardedConnectionsTable;
  scim_users: ScimUsersTable;
  admin_keys: AdminKeysTable;
  credential_rotations: CredentialRotationsTable;
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
export type AdminKeyRow = Selectable<AdminKeysTable>;
export type CredentialRotationRow = Selectable<CredentialRotationsTable>;
