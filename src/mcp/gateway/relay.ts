import type { Logger } from 'pino';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema, McpError, ErrorCode, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { WarrantError, isWarrantError } from '../../errors/index.ts';
import type { AuditQueue } from '../../events/index.ts';
import type { Store } from '../../store/index.ts';
import { problemResult } from '../tool-kit.ts';
import type { Allowlists } from './allowlists.ts';
import type { GatewayCaller } from './auth.ts';
import { providerIdOf, type StoredServer } from './servers.ts';
import type { UpstreamClients } from './upstream.ts';

// The downstream side of /mcp/{server}: an SDK `Server` per session (or stateless request) that
// relays tools/list and tools/call to the upstream through the owner's connection. Every
// tools/call is audited (`mcp.tool_call`: server, tool, an HMAC of the arguments, outcome), refused
// ones included; a dead upstream grant is a tool result carrying the re-connect link, never a 401.

export interface RelayContext {
  caller: GatewayCaller;
  requestId: string;
}

export interface RelayDeps {
  store: Pick<Store, 'connections'>;
  upstream: UpstreamClients;
  allowlists: Allowlists;
  auditQueue: Pick<AuditQueue, 'reserve'>;
  hashArguments(args: unknown): string;
  /** A single-use re-connect link for the owner of a dead connection. */
  reconnectLink(connectionId: string): Promise<string | undefined>;
  logger: Logger;
}

export function createRelay(deps: RelayDeps) {
  /** The owner's connection to this server: an active one first, else one that needs re-consent. */
  async function connectionOf(server: StoredServer, owner: string) {
    const rows = await deps.store.connections.list({ owner, provider: providerIdOf(server.name) });
    return rows.find((r) => r.status === 'active') ?? rows.find((r) => r.status === 'reauth_required' || r.status === 'error');
  }

  async function reauthResult(server: StoredServer, connectionId: string, requestId: string, err: WarrantError): Promise<CallToolResult> {
    const link = await deps.reconnectLink(connectionId).catch(() => undefined);
    const problem = err.toProblem(requestId);
    const text =
      `The connection to the MCP server "${server.name}" has expired or was revoked, so this tool cannot run. ` +
      (link ? `Ask the user to re-connect it by opening this link in their browser (it works once): ${link}` : 'Ask the user to connect it again in Warrant.') +
      ` Then retry.`;
    return { content: [{ type: 'text', text }, { type: 'text', text: JSON.stringify({ ...problem, ...(link ? { reconnect_url: link } : {}) }) }], isError: true };
  }

  async function callTool(server: StoredServer, name: string, args: Record<string, unknown> | undefined, ctx: RelayContext): Promise<CallToolResult> {
    const started = performance.now();
    const reservation = deps.auditQueue.reserve(ctx.caller.agentId);
    if (!reservation) return problemResult(new WarrantError('unavailable', 'the audit log cannot be written right now; Warrant refuses calls it cannot record', { retry_after: 1 }), ctx.requestId);
    let code: string | null = null;
    let subject: string | undefined;
    try {
      const allowed = await deps.allowlists.get(ctx.caller.agentId, server.name);
      if (allowed && !allowed.includes(name)) throw new WarrantError('policy_denied', `this agent may not call the tool ${name.slice(0, 64)} of ${server.name}`, { tool: name.slice(0, 64) });
      const conn = await connectionOf(server, ctx.caller.owner);
      if (!conn) throw new WarrantError('policy_denied', `the owner has no connection to ${server.name} (provider ${providerIdOf(server.name)}); connect it first`);
      subject = `connection:${conn.id}`;
      try {
        const result = await deps.upstream.callTool(conn.id, server.url, name, args);
        if (result.isError) code = 'tool_error';
        return result;
      } catch (err) {
        if (isWarrantError(err, 'reauth_required')) {
          code = err.code;
          return await reauthResult(server, conn.id, ctx.requestId, err);
        }
        if (err instanceof McpError) {
          // The upstream's own protocol answer (unknown tool, bad arguments): relayed as it is.
          code = 'upstream_error';
          throw err;
        }
        throw err;
      }
    } catch (err) {
      if (err instanceof McpError) throw err;
      const problem = isWarrantError(err) ? err : new WarrantError('upstream_unavailable', 'the MCP server could not be reached', {}, { cause: err });
      code = problem.code;
      if (!isWarrantError(err)) deps.logger.warn({ err: (err as Error).message?.slice(0, 200), server: server.name, request_id: ctx.requestId }, 'mcp gateway call failed');
      return problemResult(problem, ctx.requestId);
    } finally {
      reservation.commit({
        type: 'mcp.tool_call',
        actor: `agent:${ctx.caller.agentId}`,
        ...(subject ? { subject } : {}),
        data: {
          server: server.name,
          tool: name.slice(0, 64),
          arguments_hash: deps.hashArguments(args),
          outcome: code ? 'error' : 'ok',
          code,
          via: 'oauth',
          duration_ms: Math.round((performance.now() - started) * 10) / 10,
          request_id: ctx.requestId,
        },
      });
    }
  }

  async function listTools(server: StoredServer, cursor: string | undefined, ctx: RelayContext) {
    const conn = await connectionOf(server, ctx.caller.owner);
    if (!conn) throw new McpError(ErrorCode.InvalidRequest, `the owner has no connection to ${server.name}; connect it first`);
    let listed;
    try {
      listed = await deps.upstream.listTools(conn.id, server.url, cursor);
    } catch (err) {
      if (isWarrantError(err)) throw new McpError(ErrorCode.InternalError, `${err.code}: ${err.detail ?? ''}`.slice(0, 300));
      throw err;
    }
    const allowed = await deps.allowlists.get(ctx.caller.agentId, server.name);
    return { ...listed, tools: allowed ? listed.tools.filter((t) => allowed.includes(t.name)) : listed.tools };
  }

  return {
    /** One SDK server for `server`, answering through the caller of each request. */
    serverFor(server: StoredServer): Server {
      const s = new Server({ name: `warrant-gateway/${server.name}`, version: '1' }, { capabilities: { tools: { listChanged: false } } });
      const ctxOf = (extra: { authInfo?: { extra?: Record<string, unknown> } }) => {
        const c = extra.authInfo?.extra as RelayContext | undefined;
        if (!c?.caller) throw new McpError(ErrorCode.InvalidRequest, 'unauthenticated');
        return c;
      };
      s.setRequestHandler(ListToolsRequestSchema, (req, extra) => listTools(server, req.params?.cursor, ctxOf(extra)));
      s.setRequestHandler(CallToolRequestSchema, (req, extra) => callTool(server, req.params.name, req.params.arguments, ctxOf(extra)));
      return s;
    },
  };
}

export type Relay = ReturnType<typeof createRelay>;
