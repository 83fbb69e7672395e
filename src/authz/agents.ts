import type { AgentService } from '../agents/index.ts';
import type { Store } from '../store/index.ts';
import { authzTables } from './tables.ts';

// A client an owner consented to is an agent of that owner: one agent row per (client, owner),
// created through the agent service (audited as `agent.created`), with no connection grant. Its
// tokens live only while the agent does: revoking the agent or offboarding the owner makes the
// grant unknown to the token endpoint and to introspection (provider.ts wraps Grant.find).
//
// What the owner consented to is kept on the same row (`consent`), accumulated over the owner's
// consents and dropped with the agent: oidc-provider keeps grants per browser session, and this is
// what lets a new session of the owner skip the consent page for what was already allowed
// (provider.ts, loadExistingGrant).

/** What an owner allowed a client: OIDC-level scopes, and the scopes granted at each resource (RFC 8707). */
export interface Consent {
  scopes: string[];
  resources: Record<string, string[]>;
}

const MAX_CONSENT_ENTRIES = 200;

function parseConsent(raw: string | null | undefined): Consent | undefined {
  if (!raw) return undefined;
  try {
    const v = JSON.parse(raw) as Partial<Consent>;
    const list = (x: unknown) => (Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string') : []);
    const resources: Record<string, string[]> = {};
    for (const [k, scopes] of Object.entries(v.resources ?? {})) resources[k] = list(scopes);
    return { scopes: list(v.scopes), resources };
  } catch {
    return undefined;
  }
}

/** `a ∪ b`, each list without duplicates. */
function mergeConsent(a: Consent | undefined, b: Consent): Consent {
  const union = (x: string[] = [], y: string[] = []) => [...new Set([...x, ...y])].filter(Boolean);
  const resources: Record<string, string[]> = { ...(a?.resources ?? {}) };
  for (const [k, scopes] of Object.entries(b.resources)) resources[k] = union(resources[k], scopes);
  return { scopes: union(a?.scopes, b.scopes), resources };
}

export interface ClientAgentsDeps {
  store: Pick<Store, 'db'>;
  agents: Pick<AgentService, 'create'>;
  now: () => number;
}

export function createClientAgents(deps: ClientAgentsDeps) {
  const db = authzTables(deps.store.db);

  async function activeAgentOf(clientId: string, owner: string): Promise<string | undefined> {
    const now = deps.now();
    const row = await db
      .selectFrom('authz_agents')
      .innerJoin('agents', 'agents.id', 'authz_agents.agent_id')
      .leftJoin('owners', 'owners.id', 'agents.owner')
      .select(['agents.id as id', 'agents.status as status', 'agents.expires_at as expires_at', 'owners.status as owner_status'])
      .where('authz_agents.client_id', '=', clientId)
      .where('authz_agents.owner', '=', owner)
      .executeTakeFirst();
    if (!row || row.status !== 'active' || row.owner_status === 'offboarded') return undefined;
    if (row.expires_at !== null && Number(row.expires_at) <= now) return undefined;
    return row.id;
  }

  return {
    activeAgentOf,

    /** What the owner consented to for this client, while the client's agent of the owner is active. */
    async consentOf(clientId: string, owner: string): Promise<Consent | undefined> {
      const agentId = await activeAgentOf(clientId, owner);
      if (!agentId) return undefined;
      const row = await db.selectFrom('authz_agents').select('consent').where('client_id', '=', clientId).where('owner', '=', owner).where('agent_id', '=', agentId).executeTakeFirst();
      return parseConsent(row?.consent);
    },

    /**
     * Adds what the owner just allowed to what the owner allowed `agentId` before. Two consents of
     * one owner to one client at the same instant may keep only one of them: the owner is asked again.
     */
    async remember(clientId: string, owner: string, agentId: string, consent: Consent): Promise<void> {
      const row = await db.selectFrom('authz_agents').select('consent').where('client_id', '=', clientId).where('owner', '=', owner).where('agent_id', '=', agentId).executeTakeFirst();
      if (!row) return;
      const merged = mergeConsent(parseConsent(row.consent), consent);
      // Bounded: resources are ones Warrant serves, but a client could be sent to many MCP servers.
      if (merged.scopes.length + Object.keys(merged.resources).length > MAX_CONSENT_ENTRIES) return;
      await db
        .updateTable('authz_agents')
        .set({ consent: JSON.stringify(merged) })
        .where('client_id', '=', clientId)
        .where('owner', '=', owner)
        .where('agent_id', '=', agentId)
        .execute();
    },

    /** The agent of this client and owner, created on the first consent (or after the last was revoked). */
    async ensure(client: { clientId: string; name?: string }, owner: string): Promise<string> {
      const existing = await activeAgentOf(client.clientId, owner);
      if (existing) return existing;
      const label = (client.name ?? client.clientId).slice(0, 80);
      const agent = await deps.agents.create({ name: `oauth client: ${label}`, owner, grants: [] }, `owner:${owner}`, { oauthClient: client.clientId });
      // A new agent starts with no consent remembered: what the revoked one was allowed is gone with it.
      const row = { agent_id: agent.id, created_at: deps.now(), consent: null };
      await db
        .insertInto('authz_agents')
        .values({ client_id: client.clientId, owner, ...row })
        .onConflict((oc) => oc.columns(['client_id', 'owner']).doUpdateSet(row))
        .execute();
      return agent.id;
    },
  };
}

export type ClientAgents = ReturnType<typeof createClientAgents>;
