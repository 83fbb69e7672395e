import type { Store } from '../../store/index.ts';
import { gatewayTables } from './tables.ts';

// Which tools of a server an agent may call: stored per (agent, server); no row means every tool.
// Checked on tools/call (a refused call is audited like any) and applied to tools/list.

export function createAllowlists(deps: { store: Pick<Store, 'db'>; now: () => number }) {
  const db = gatewayTables(deps.store.db);
  return {
    /** The allowed tool names, or undefined for "every tool". */
    async get(agentId: string, server: string): Promise<string[] | undefined> {
      const row = await db.selectFrom('mcp_tool_allowlists').select('tools').where('agent_id', '=', agentId).where('server', '=', server).executeTakeFirst();
      return row ? (JSON.parse(row.tools) as string[]) : undefined;
    },
    /** Sets the list (`null`: back to every tool). */
    async set(agentId: string, server: string, tools: string[] | null): Promise<void> {
      if (tools === null) {
        await db.deleteFrom('mcp_tool_allowlists').where('agent_id', '=', agentId).where('server', '=', server).execute();
        return;
      }
      const row = { tools: JSON.stringify([...new Set(tools)].sort()), updated_at: deps.now() };
      await db
        .insertInto('mcp_tool_allowlists')
        .values({ agent_id: agentId, server, ...row })
        .onConflict((oc) => oc.columns(['agent_id', 'server']).doUpdateSet(row))
        .execute();
    },
  };
}

export type Allowlists = ReturnType<typeof createAllowlists>;
