import type { Kysely } from 'kysely';
import type { Dialect } from '../db.ts';

export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  // Remote MCP servers behind the gateway (src/mcp/gateway). Each is a provider `mcp-<name>` built
  // from `metadata` (its RFC 9728 and RFC 8414 documents as discovered, and Warrant's client id
  // there); a client secret, when there is one, is sealed in `secrets` (scope `mcp_server`).
  await db.schema
    .createTable('mcp_servers')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('metadata', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  // Per-agent tool allow-lists; no row: every tool of the server.
  await db.schema
    .createTable('mcp_tool_allowlists')
    .addColumn('agent_id', 'text', (c) => c.notNull())
    .addColumn('server', 'text', (c) => c.notNull())
    .addColumn('tools', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('mcp_tool_allowlists_pk', ['agent_id', 'server'])
    .execute();
}
