/**
 * An MCP client (the official TypeScript SDK) on Warrant's own MCP server, configured the way an
 * IDE is: it reads the `warrant` entry of mcp.json (Cursor's format, `${env:NAME}` expanded),
 * connects over Streamable HTTP with the agent key, lists the tools, then reads the API with
 * `call_api`. The client never holds an upstream token; Warrant injects and refreshes it.
 *
 *   WARRANT_URL, WARRANT_AGENT_KEY, WARRANT_CONNECTION
 */
import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';

interface ServerEntry {
  url: string;
  headers?: Record<string, string>;
}

/** `${env:NAME}` as Cursor expands it; a variable that is not set is an error, not an empty string. */
const expand = (value: string) =>
  value.replace(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const v = process.env[name];
    if (!v) throw new Error(`mcp.json uses \${env:${name}}, which is not set`);
    return v;
  });

const connection = process.env.WARRANT_CONNECTION;
if (!connection) throw new Error('set WARRANT_CONNECTION to the connection id (con_…) the agent may use');
const config = JSON.parse(readFileSync(new URL('./mcp.json', import.meta.url), 'utf8')) as { mcpServers: Record<string, ServerEntry> };
const entry = config.mcpServers.warrant!;
const headers = Object.fromEntries(Object.entries(entry.headers ?? {}).map(([k, v]) => [k, expand(v)]));

const transport = new StreamableHTTPClientTransport(new URL(expand(entry.url)), { requestInit: { headers } });
const client = new Client({ name: 'warrant-example', version: '1.0.0' });
await client.connect(transport);
try {
  const { tools } = await client.listTools();
  console.log(`tools: ${tools.map((t) => t.name).join(', ')}`);

  const listed = (await client.callTool({ name: 'list_connections', arguments: {} })) as CallToolResult;
  console.log(`list_connections: ${JSON.stringify(listed.structuredContent)}`);

  const called = (await client.callTool({ name: 'call_api', arguments: { connection, method: 'GET', path: '/items' } })) as CallToolResult;
  if (called.isError) {
    // Warrant's typed problem (policy_denied, reauth_required …) as the tool's text.
    console.log(`call_api GET /items -> error ${(called.content[0] as { text?: string } | undefined)?.text ?? ''}`);
    process.exitCode = 1;
  } else {
    const answer = called.structuredContent as { status: number; body: string };
    console.log(`call_api GET /items -> ${answer.status} ${answer.body}`);
  }
} finally {
  await client.close();
}
