import type { AgentRow, GrantRow } from '../store/index.ts';
import type { OrphanReason } from './repo.ts';
import { iso } from '../util/time.ts';
import { tagsOf, type Labels } from '../util/tags.ts';

/** One grant as the API shows it: a connection, the scopes of it the agent may use, token export. */
export interface GrantView {
  connection: string;
  scopes: string[];
  token_export: boolean;
}

/**
 * What the API shows of an agent: never its key nor the key's hash. `status` is computed:
 * an active agent past its `expires_at` shows as `expired`. A suspended agent (agents/orphans.ts,
 * `PATCH /v1/agents/{id}`) also shows since when and why.
 */
export interface AgentView {
  id: string;
  name: string;
  owner: string;
  status: 'active' | 'expired' | 'suspended' | 'revoked';
  /** Not secret: the lookup part of the key (`wrt_<key_id>_…`), to tell which agent a key belongs to. */
  key_id: string;
  expires_at: string | null;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  grants: GrantView[];
  /** Tags (util/tags.ts): the product's end user and organization ids, and free labels. */
  end_user: string | null;
  organization: string | null;
  labels: Labels;
  orphan_reasons?: OrphanReason[];
  /** Only while suspended. */
  suspended_at?: string;
  /** Only while suspended: orphan reasons, or `admin`. */
  suspended_reasons?: string[];
}

/** The identity the proxy and the agent API work with, after `authenticate()`. Frozen: shared from the cache. */
export interface AuthenticatedAgent {
  readonly id: string;
  readonly name: string;
  readonly owner: string;
  readonly grants: readonly AgentGrant[];
}

export interface AgentGrant {
  readonly connection_id: string;
  readonly scopes: readonly string[];
  readonly token_export: boolean;
}


/** A JSON list of scopes as stored (grants, connections); anything else reads as no scopes. */
export function scopeList(json: string): string[] {
  try {
    const parsed: unknown = JSON.parse(json);
    return Array.isArray(parsed) ? parsed.filter((s): s is string => typeof s === 'string') : [];
  } catch {
    return [];
  }
}

export function isExpired(row: AgentRow, now: number): boolean {
  return row.expires_at !== null && row.expires_at <= now;
}

export function viewOf(row: AgentRow, grants: GrantRow[], now: number): AgentView {
  return {
    id: row.id,
    name: row.name,
    owner: row.owner,
    status: row.status === 'revoked' ? 'revoked' : row.status === 'suspended' ? 'suspended' : isExpired(row, now) ? 'expired' : 'active',
    key_id: row.key_id,
    expires_at: iso(row.expires_at),
    created_at: new Date(row.created_at).toISOString(),
    last_used_at: iso(row.last_used_at),
    revoked_at: iso(row.revoked_at),
    grants: grants.map((g) => ({ connection: g.connection_id, scopes: scopeList(g.scopes), token_export: Number(g.token_export) === 1 })),
    ...tagsOf(row),
    ...(row.status === 'suspended' && row.suspended_at !== null
      ? { suspended_at: new Date(Number(row.suspended_at)).toISOString(), suspended_reasons: scopeList(row.suspended_reasons ?? '[]') }
      : {}),
  };
}

export function authenticatedAgentOf(row: AgentRow, grants: GrantRow[]): AuthenticatedAgent {
  return Object.freeze({
    id: row.id,
    name: row.name,
    owner: row.owner,
    grants: Object.freeze(
      grants.map((g) => Object.freeze({ connection_id: g.connection_id, scopes: Object.freeze(scopeList(g.scopes)), token_export: Number(g.token_export) === 1 })),
    ),
  });
}

/** The agent's grant on `connectionId`, or undefined: no grant means `policy_denied`. */
export function grantFor(agent: AuthenticatedAgent, connectionId: string): AgentGrant | undefined {
  return agent.grants.find((g) => g.connection_id === connectionId);
}
