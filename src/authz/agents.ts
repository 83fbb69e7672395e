import type { AgentService } from '../agents/index.ts';
import type { Store } from '../store/index.ts';
import { authzTables } from './tables.ts';

// A client an owner consented to is an agent of that owner: one agent row per (client, owner),
// created through the agent service (audited as `agent.created`), with no connection grant. Its
// tokens live only while the agent does: revoking the agent or offboarding the owner makes the
// grant unknown to the token endpoint and to introspection (provider.ts wraps Grant.find).

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

    /** The agent of this client and owner, created on the first consent (or after the last was revoked). */
    async ensure(client: { clientId: string; name?: string }, owner: string): Promise<string> {
      const existing = await activeAgentOf(client.clientId, owner);
      if (existing) return existing;
      const label = (client.name ?? client.clientId).slice(0, 80);
      const agent = await deps.agents.create({ name: `oauth client: ${label}`, owner, grants: [] }, `owner:${owner}`, { oauthClient: client.clientId });
      const row = { agent_id: agent.id, created_at: deps.now() };
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
