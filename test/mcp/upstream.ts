import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { sandboxDefaults, type Sandbox } from '../../src/sandbox/index.ts';

// The remote MCP server the gateway tests put Warrant in front of: built with the SDK, protected by
// the sandbox IdP (RFC 9728 metadata pointing at it, bearer tokens introspected there).

/** An MCP server of its own: tools `echo` and `add`, bearer tokens introspected at the sandbox. */
export async function startUpstream(sandboxRef: () => Sandbox): Promise<{ url: string; close(): Promise<void>; seenTokens: Set<string> }> {
  const seenTokens = new Set<string>();
  let origin = '';
  const server: HttpServer = createServer(async (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/.well-known/oauth-protected-resource/mcp') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ resource: `${origin}/mcp`, authorization_servers: [sandboxRef().issuer], scopes_supported: ['items:read'] }));
    }
    if (path !== '/mcp') return void res.writeHead(404).end();
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const challenge = `Bearer resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"`;
    let active = false;
    if (token) {
      seenTokens.add(token);
      const r = await fetch(`${sandboxRef().issuer}/token/introspection`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${sandboxDefaults.clientId}:${sandboxDefaults.clientSecret}`).toString('base64')}` },
        body: new URLSearchParams({ token }).toString(),
        signal: AbortSignal.timeout(5000),
      });
      const info = (await r.json()) as { active?: boolean; aud?: string | string[] };
      active = info.active === true && (info.aud === undefined || [info.aud].flat().includes(`${origin}/mcp`));
    }
    if (!active) {
      res.writeHead(401, { 'www-authenticate': token ? `${challenge}, error="invalid_token"` : challenge, 'content-type': 'application/json' });
      return void res.end('{"error":"invalid_token"}');
    }
    const mcp = new McpServer({ name: 'upstream', version: '1' });
    mcp.registerTool('echo', { description: 'echo', inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text: `echo: ${text}` }] }));
    mcp.registerTool('add', { description: 'add', inputSchema: { a: z.number(), b: z.number() } }, async ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.once('close', () => void mcp.close());
    await mcp.connect(transport);
    await transport.handleRequest(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/mcp`,
    seenTokens,
    close: () => new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
  };
}
