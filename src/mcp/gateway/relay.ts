import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema, McpError, ErrorCode, UrlElicitationRequiredError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { WarrantError, isWarrantError } from '../../errors/index.ts';
import type { AuditQueue, EventBus } from '../../events/index.ts';
import type { Store } from '../../store/index.ts';
import { problemResult } from '../tool-kit.ts';
import type { Allowlists } from './allowlists.ts';
import type { GatewayCaller } from './auth.ts';
import { providerIdOf, type StoredServer } from './servers.ts';
import type { UpstreamClients } from './upstream.ts';
import { stepUpOf, stepUpResult } from './step-up.ts';

// The downstream side of /mcp/{server}: an SDK `Server` per session (or stateless request) that
// relays tools/list and tools/call to the upstream through the owner's connection. Every
// tools/call is audited (`mcp.tool_call`: server, tool, an HMAC of the arguments, outcome), refused
// ones included; a dead upstream grant is a tool result carrying the re-connect link, never a 401.
// A session whose client declared URL-mode elicitation (`capabilities.elicitation.url`, MCP
// 2025-11-25) gets the link as a URL elicitation instead: the JSON-RPC error -32042
// (URLElicitationRequiredError); once the owner re-connects (`connection.reconnected` on this
// instance's bus), the session is sent `notifications/elicitation/complete` so the client retries.

/** Pending URL elicitations kept per session and connection (the oldest is dropped past it). */
const MAX_PENDING_PER_SESSION = 8;

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
  /** A single-use connect link for the owner to consent to `scopes` on this server (a step-up, step-up.ts). */
  stepUpLink?(connectionId: string, scopes: string[]): Promise<string | undefined>;
  /** Where `connection.reconnected` is published: pending URL elicitations complete on it. */
  bus?: Pick<EventBus, 'on'>;
  logger: Logger;
}

interface PendingElicitation {
  id: string;
  session: Server;
  complete(): Promise<void>;
}

export function createRelay(deps: RelayDeps) {
  /** connection id → URL elicitations sent for it that no re-connect has completed yet. */
  const pending = new Map<string, PendingElicitation[]>();

  function forgetSession(session: Server): void {
    for (const [id, list] of pending) {
      const left = list.filter((p) => p.session !== session);
      if (left.length) pending.set(id, left);
      else pending.delete(id);
    }
  }

  const unsubscribe = deps.bus?.on('connection.reconnected', (e) => {
    const connectionId = e.subject?.startsWith('connection:') ? e.subject.slice('connection:'.length) : undefined;
    if (!connectionId) return;
    // A new grant: the next call opens a fresh upstream session with it.
    deps.upstream.forget(connectionId);
    const list = pending.get(connectionId);
    pending.delete(connectionId);
    for (const p of list ?? []) {
      p.complete().catch((err: Error) => deps.logger.info({ connection: connectionId, err: err.message?.slice(0, 200) }, 'could not send notifications/elicitation/complete; the session may be gone'));
    }
  });

  /** Whether this session's client takes URL-mode elicitations (MCP 2025-11-25 `elicitation.url`). */
  const elicitsUrls = (session: Server) => session.getClientCapabilities()?.elicitation?.url !== undefined;

  /** The re-connect link as a URL elicitation (-32042), remembered so its completion can be announced. */
  function elicitation(session: Server, server: StoredServer, connectionId: string, link: string): UrlElicitationRequiredError {
    const id = randomUUID();
    const message = `The connection to the MCP server "${server.name}" has expired or was revoked. Open this link to connect it again (it works once), then retry.`;
    const list = [...(pending.get(connectionId) ?? [])];
    const own = list.filter((p) => p.session === session);
    if (own.length >= MAX_PENDING_PER_SESSION) list.splice(list.indexOf(own[0]!), 1);
    list.push({ id, session, complete: session.createElicitationCompletionNotifier(id) });
    pending.set(connectionId, list);
    return new UrlElicitationRequiredError([{ mode: 'url', elicitationId: id, url: link, message }], message);
  }

  /**
   * The owner's connection to this server: an active one first (the newest: a step-up settles as a
   * new connection with the wider scope set), else one that needs re-consent.
   */
  async function connectionOf(server: StoredServer, owner: string) {
    const rows = (await deps.store.connections.list({ owner, provider: providerIdOf(server.name) })).sort((a, b) => b.created_at - a.created_at);
    return rows.find((r) => r.status === 'active') ?? rows.find((r) => r.status === 'reauth_required' || r.status === 'error');
  }

  /** An upstream 403 insufficient_scope: a step-up link for the owner while one can help (step-up.ts). */
  async function stepUpAnswer(server: StoredServer, conn: NonNullable<Awaited<ReturnType<typeof connectionOf>>>, err: WarrantError, requestId: string) {
    const step = stepUpOf(conn, err);
    // A machine grant has no owner's consent to widen: its scopes are the server's registration.
    const link = step.missing.length && server.grant_type !== 'client_credentials' ? await deps.stepUpLink?.(conn.id, step.scopes).catch(() => undefined) : undefined;
    return stepUpResult(server, step, link, requestId);
  }

  /**
   * A dead upstream grant, told downstream once per call and never as a 401: a URL elicitation for a
   * client that takes them, else a tool result with the link (and without one when none can be made).
   */
  async function reauthAnswer(session: Server, server: StoredServer, connectionId: string, requestId: string, err: WarrantError): Promise<CallToolResult | UrlElicitationRequiredError> {
    if (server.grant_type === 'client_credentials') {
      // A machine grant has no consent to repeat: its credentials were refused (revoked, rotated).
      const text =
        `The MCP server "${server.name}" refused Warrant's client credentials (revoked or rotated), so this tool cannot run. ` +
        `An administrator must register the server again with valid credentials; retrying will not help until then.`;
      const problem = new WarrantError('reauth_required', `the MCP server ${server.name} refused Warrant's client credentials; an admin must register it again (DELETE then POST /v1/mcp-servers)`, {
        connection: connectionId,
      }).toProblem(requestId);
      return { content: [{ type: 'text', text }, { type: 'text', text: JSON.stringify(problem) }], isError: true };
    }
    const link = await deps.reconnectLink(connectionId).catch(() => undefined);
    if (link && elicitsUrls(session)) return elicitation(session, server, connectionId, link);
    const problem = err.toProblem(requestId);
    const text =
      `The connection to the MCP server "${server.name}" has expired or was revoked, so this tool cannot run. ` +
      (link ? `Ask the user to re-connect it by opening this link in their browser (it works once): ${link}` : 'Ask the user to connect it again in Warrant.') +
      ` Then retry.`;
    return { content: [{ type: 'text', text }, { type: 'text', text: JSON.stringify({ ...problem, ...(link ? { reconnect_url: link } : {}) }) }], isError: true };
  }

  async function callTool(session: Server, server: StoredServer, name: string, args: Record<string, unknown> | undefined, ctx: RelayContext): Promise<CallToolResult> {
    const started = performance.now();
    const reservation = deps.auditQueue.reserve(ctx.caller.agentId);
    if (!reservation) return problemResult(new WarrantError('unavailable', 'the audit log cannot be written right now; Warrant refuses calls it cannot record', { retry_after: 1 }), ctx.requestId);
    let code: string | null = null;
    /** Why a call was refused before it went upstream (policy_denied), for the audit. */
    let reason: 'allow_list' | 'no_connection' | undefined;
    let elicited = false;
    let subject: string | undefined;
    try {
      const allowed = await deps.allowlists.get(ctx.caller.agentId, server.name);
      if (allowed && !allowed.includes(name)) {
        reason = 'allow_list';
        throw new WarrantError('policy_denied', `this agent may not call the tool ${name.slice(0, 64)} of ${server.name}`, { tool: name.slice(0, 64) });
      }
      const conn = await connectionOf(server, ctx.caller.owner);
      if (!conn) {
        reason = 'no_connection';
        throw new WarrantError('policy_denied', `the owner has no connection to ${server.name} (provider ${providerIdOf(server.name)}); connect it first`);
      }
      subject = `connection:${conn.id}`;
      try {
        const result = await deps.upstream.callTool(conn.id, server.url, name, args);
        if (result.isError) code = 'tool_error';
        return result;
      } catch (err) {
        if (isWarrantError(err, 'reauth_required')) {
          code = err.code;
          const answer = await reauthAnswer(session, server, conn.id, ctx.requestId, err);
          if (answer instanceof UrlElicitationRequiredError) {
            elicited = true;
            throw answer;
          }
          return answer;
        }
        if (isWarrantError(err, 'scope_insufficient')) {
          code = err.code;
          return await stepUpAnswer(server, conn, err, ctx.requestId);
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
          ...(reason ? { reason } : {}),
          ...(elicited ? { elicitation: 'url' } : {}),
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
      if (isWarrantError(err, 'scope_insufficient')) {
        // A list has no tool result to carry the link: the step-up problem goes in the error's data.
        const answer = await stepUpAnswer(server, conn, err, ctx.requestId);
        const problem = JSON.parse((answer.content.at(-1) as { text: string }).text) as Record<string, unknown>;
        throw new McpError(ErrorCode.InvalidRequest, `${err.code}: ${String(problem.detail ?? '')}`.slice(0, 300), problem);
      }
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
      s.setRequestHandler(CallToolRequestSchema, (req, extra) => callTool(s, server, req.params.name, req.params.arguments, ctxOf(extra)));
      s.onclose = () => forgetSession(s);
      return s;
    },
    /** Stops listening for re-connects; pending elicitations are dropped with their sessions. */
    close(): void {
      unsubscribe?.();
      pending.clear();
    },
  };
}

export type Relay = ReturnType<typeof createRelay>;
