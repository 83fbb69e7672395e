import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION, isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { WarrantError, invalidRequest } from '../errors/index.ts';
import type { AuditInput, AuditQueue } from '../events/index.ts';
import { asProblem, problemResponse } from '../http/problems.ts';
import type { McpOptions } from './options.ts';
import { STATELESS_PROTOCOL_VERSION } from './server.ts';
import { createSessionTable, newSessionId } from './sessions.ts';

// The Streamable HTTP side that /mcp/warrant (endpoint.ts) and /mcp/{server} (gateway/endpoint.ts)
// share, once the endpoint has authenticated the request and attached its caller as `req.auth`:
// - `Mcp-Session-Id` present: the session, if it is this owner's (another's or an unknown id: 404);
// - no session id, an `initialize`: a new session (2025 session-based era);
// - no session id, anything else: the request stands alone (stateless; the 2026-07-28 era).
// An owner is whatever the endpoint binds a session to (the agent; the agent and the server).

/** How long the JSON-RPC body may take to arrive, in ms. */
const BODY_DEADLINE_MS = 10_000;

type Transport = StreamableHTTPServerTransport;

export function readBody(req: IncomingMessage, limitBytes: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limitBytes) return Promise.reject(new WarrantError('payload_too_large', `the JSON-RPC body is larger than ${limitBytes} bytes`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => fail(new WarrantError('invalid_request', `body: did not arrive within ${BODY_DEADLINE_MS} ms`, { field: 'body' }, { status: 408 })), BODY_DEADLINE_MS);
    function fail(err: unknown) {
      clearTimeout(timer);
      req.removeAllListeners('data');
      reject(err);
    }
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limitBytes) return fail(new WarrantError('payload_too_large', `the JSON-RPC body is larger than ${limitBytes} bytes`));
      chunks.push(c);
    });
    req.once('error', fail);
    req.once('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(Buffer.concat(chunks, size).toString('utf8')));
      } catch {
        reject(invalidRequest('body', 'is not valid JSON'));
      }
    });
  });
}

/** The problem as the answer (RFC 9457), with the request id; a stream already started is cut. */
export function sendProblem(res: ServerResponse, err: WarrantError, requestId: string, extraHeaders: Record<string, string> = {}): void {
  if (res.headersSent) return void res.destroy();
  const { status, headers, body } = problemResponse(err, requestId);
  res.writeHead(status, { ...headers, ...extraHeaders, 'warrant-request-id': requestId });
  res.end(body);
}

/** JSON-RPC's own answer for an unknown (or another owner's) session, as the SDK gives it. */
function sessionNotFound(res: ServerResponse): void {
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.writeHead(405, { allow });
  res.end();
}

/**
 * The SDK speaks the 2025 revisions; a 2026-07-28 request is the same tools/call or tools/list
 * without a session, so it is handed over under the newest revision the SDK knows.
 */
function asLatestRevision(req: IncomingMessage): void {
  if (req.headers['mcp-protocol-version'] !== STATELESS_PROTOCOL_VERSION) return;
  req.headers['mcp-protocol-version'] = LATEST_PROTOCOL_VERSION;
  // The SDK's node adapter builds its Request from the raw header list.
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'mcp-protocol-version') req.rawHeaders[i + 1] = LATEST_PROTOCOL_VERSION;
}

/** One authenticated request, as an endpoint hands it over. */
export interface McpExchange {
  /** The request with its caller attached as `auth` (the transport passes it to handlers as `authInfo`). */
  req: IncomingMessage;
  res: ServerResponse;
  /** Whom a session opened by this request belongs to. */
  owner: string;
  /** A fresh SDK server, for a new session or one stateless request. */
  newServer(): Server;
  /** Looks at a POST body before the SDK does; true when it already answered (a 403 step-up). */
  refuse?(body: unknown): boolean;
  /** A session id held by another owner was presented (answered 404 like an unknown one). */
  foreignSession?(holder: string): void;
}

export function createMcpHttp(deps: { options: McpOptions; logger: Logger; /** For log lines: `mcp`, `mcp gateway`. */ name: string }) {
  const { options } = deps;
  const sessions = createSessionTable<Transport>({
    maxSessions: options.maxSessions,
    maxSessionsPerAgent: options.maxSessionsPerAgent,
    idleMs: options.sessionIdleMs,
    onClose: (t) => void (t as Transport).close().catch(() => undefined),
  });

  async function open(x: McpExchange, body: unknown): Promise<void> {
    if (!sessions.makeRoom(x.owner)) {
      throw new WarrantError('unavailable', 'this Warrant instance holds as many MCP sessions as it may; retry later, or call without a session (stateless)', { retry_after: 5 });
    }
    const id = newSessionId();
    const transport: Transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => id,
      enableJsonResponse: true,
      onsessioninitialized: (sid) => sessions.add(sid, x.owner, transport),
      onsessionclosed: (sid) => sessions.remove(sid),
    });
    transport.onclose = () => sessions.remove(id);
    await x.newServer().connect(transport);
    await transport.handleRequest(x.req, x.res, body);
  }

  async function stateless(x: McpExchange, body: unknown): Promise<void> {
    asLatestRevision(x.req);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    const server = x.newServer();
    x.res.once('close', () => void server.close().catch(() => undefined));
    await server.connect(transport);
    await transport.handleRequest(x.req, x.res, body);
  }

  return {
    /** Answers an authenticated request: its session, a new session, or a stateless exchange. */
    async serve(x: McpExchange): Promise<void> {
      const method = x.req.method ?? '';
      if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') return methodNotAllowed(x.res, 'GET, POST, DELETE');
      const sid = x.req.headers['mcp-session-id'];
      if (typeof sid === 'string' && sid) {
        const session = sessions.get(sid, x.owner);
        if (!session) {
          const holder = sessions.ownerOf(sid);
          if (holder !== undefined && holder !== x.owner) x.foreignSession?.(holder);
          return sessionNotFound(x.res);
        }
        const body = method === 'POST' ? await readBody(x.req, options.requestBodyLimitBytes) : undefined;
        if (body !== undefined && x.refuse?.(body)) return;
        return await session.value.handleRequest(x.req, x.res, body);
      }
      // No standalone stream and nothing to delete without a session.
      if (method !== 'POST') return methodNotAllowed(x.res, 'POST');
      const body = await readBody(x.req, options.requestBodyLimitBytes);
      if (x.refuse?.(body)) return;
      const opening = Array.isArray(body) ? body.some(isInitializeRequest) : isInitializeRequest(body);
      return opening ? await open(x, body) : await stateless(x, body);
    },

    /** The answer to anything thrown while serving: its problem; 5xx and 503 are logged. */
    fail(req: IncomingMessage, res: ServerResponse, err: unknown, requestId: string): void {
      const problem = asProblem(err);
      if (problem.code === 'internal_error' || problem.code === 'unavailable') deps.logger.error({ err: problem.cause ?? err, request_id: requestId }, `${deps.name} request failed`);
      sendProblem(res, problem, requestId, req.complete ? {} : { connection: 'close' });
    },

    sessionCount: () => sessions.size(),
    close: () => sessions.close(),
  };
}

export type McpHttp = ReturnType<typeof createMcpHttp>;

/** What an endpoint knows of a refused credential (authz's verifier adds `reason` and, once the signature held, `agentId`). */
interface RefusalDetail {
  reason?: unknown;
  agentId?: unknown;
}

/**
 * Records refusals of credentials (`mcp.token_refused`) and of session ids (`mcp.session_refused`)
 * through the audit queue, one entry per refusal, never a credential. Refusals nobody can be named
 * for (a forged or garbage token) are capped at `anonymousPerSecond` an instance, so a flood of
 * junk bearers cannot fill the audit log; what the cap held back is counted in the next entry
 * (`suppressed_before`) and logged.
 */
export function createRefusalAudit(deps: { auditQueue: Pick<AuditQueue, 'reserve'>; logger: Logger; now?: () => number; anonymousPerSecond?: number }) {
  const now = deps.now ?? Date.now;
  const cap = deps.anonymousPerSecond ?? 20;
  let window = 0;
  let inWindow = 0;
  let suppressed = 0;

  function record(entry: AuditInput): void {
    const slot = deps.auditQueue.reserve();
    if (slot) slot.commit(entry);
    else deps.logger.warn({ type: entry.type }, 'audit queue full: an mcp refusal was not recorded');
  }

  function anonymousAllowed(): boolean {
    const second = Math.floor(now() / 1000);
    if (second !== window) {
      window = second;
      inWindow = 0;
    }
    if (inWindow < cap) {
      inWindow++;
      return true;
    }
    if (suppressed++ === 0) deps.logger.warn({ per_second: cap }, 'more refusals of unidentified MCP credentials than the audit records; the next entry counts them');
    return false;
  }

  return {
    /** A 401 or 403 at `endpoint` (`/mcp/warrant`, `/mcp/{name}`); `err` is what refused it. */
    token(endpoint: string, err: unknown, requestId: string, extra: { agentId?: string; status?: number; reason?: string; requiredScope?: string } = {}): void {
      const d = err as RefusalDetail;
      const agentId = extra.agentId ?? (typeof d.agentId === 'string' ? d.agentId : undefined);
      if (!agentId && !anonymousAllowed()) return;
      const before = agentId ? 0 : suppressed;
      if (!agentId) suppressed = 0;
      record({
        type: 'mcp.token_refused',
        actor: agentId ? `agent:${agentId}` : 'anonymous',
        data: {
          endpoint,
          status: extra.status ?? 401,
          reason: extra.reason ?? (typeof d.reason === 'string' ? d.reason : 'invalid_credential'),
          ...(extra.requiredScope ? { required_scope: extra.requiredScope } : {}),
          ...(before ? { suppressed_before: before } : {}),
          request_id: requestId,
        },
      });
    },

    /** A live session id presented by `agentId` that another owner holds. */
    session(endpoint: string, agentId: string, reason: string, requestId: string): void {
      record({ type: 'mcp.session_refused', actor: `agent:${agentId}`, data: { endpoint, reason, request_id: requestId } });
    },
  };
}

export type RefusalAudit = ReturnType<typeof createRefusalAudit>;
