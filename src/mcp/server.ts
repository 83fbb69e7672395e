import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema, McpError, ErrorCode, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { McpCaller } from './caller.ts';
import type { ToolRunner } from './tool-kit.ts';

// One SDK `Server` per session (or per stateless request), answering tools/list and tools/call
// through the tool runner. The low-level `Server` rather than `McpServer`: McpServer validates
// arguments before the tool runs, so a refused call would go unaudited and its error would not be
// Warrant's typed `invalid_request` naming the field; here every call goes through one audited path.

/** The stateless protocol revision (SEP-2575): no initialize, no session; each request stands alone. */
export const STATELESS_PROTOCOL_VERSION = '2026-07-28';

export const SERVER_INFO = { name: 'warrant', title: 'Warrant', version: '1' } as const;

export const INSTRUCTIONS =
  "Warrant holds this agent's credentials for third-party APIs and calls them on its behalf. " +
  'Start with list_connections. Call an API with call_api; on an error, read its `code`: scope_insufficient → request_access for the missing scope; ' +
  'reauth_required → tell the user the owner must re-connect (connection_status); rate limits → wait retry_after seconds. ' +
  'provider_detail explains which scopes allow which requests.';

const capabilities = { tools: { listChanged: false } };

const DiscoverRequestSchema = z.object({ method: z.literal('server/discover'), params: z.looseObject({}).optional() });

/** The caller the endpoint authenticated for this very request (a session re-authenticates on each). */
export interface RequestAuth {
  token: string;
  clientId: string;
  scopes: string[];
  extra: { caller: McpCaller; requestId: string };
}

export function createToolServer(runner: ToolRunner): Server {
  const server = new Server(SERVER_INFO, { capabilities, instructions: INSTRUCTIONS });
  const authOf = (extra: { authInfo?: { extra?: Record<string, unknown> } }) => {
    const a = extra.authInfo?.extra as RequestAuth['extra'] | undefined;
    // Never happens through the endpoint, which authenticates every request before the transport sees it.
    if (!a?.caller) throw new McpError(ErrorCode.InvalidRequest, 'unauthenticated');
    return a;
  };
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: runner.list() }));
  server.setRequestHandler(CallToolRequestSchema, (request, extra) => {
    const { caller, requestId } = authOf(extra);
    return runner.call(request.params.name, request.params.arguments, { caller, requestId });
  });
  // SEP-2575: the one handshake-like exchange left in the stateless era; answered in both eras.
  (server as unknown as Server<{ method: string }>).setRequestHandler(DiscoverRequestSchema as never, () => ({
    supportedVersions: [STATELESS_PROTOCOL_VERSION, ...SUPPORTED_PROTOCOL_VERSIONS],
    capabilities,
    serverInfo: SERVER_INFO,
    instructions: INSTRUCTIONS,
  }));
  return server;
}
