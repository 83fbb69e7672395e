import type { Db } from '../../store/index.ts';

// The gateway's own tables (migration 009), typed here: nothing outside mcp/gateway reads them.

export type GatewayTables = {
  mcp_servers: { name: string; url: string; metadata: string; created_at: number };
  mcp_tool_allowlists: { agent_id: string; server: string; tools: string; updated_at: number };
};

export const gatewayTables = (db: Db) => db.withTables<GatewayTables>();
