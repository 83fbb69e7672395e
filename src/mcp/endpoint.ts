import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION, isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { WarrantError, invalidRequest, isWarrantError } from '../errors/index.ts';
import type { AuditInput } from '../events/index.ts';
import { bearerFrom } from '../http/auth.ts';
import { asProblem, problemResponse } from '../http/problems.ts';
import { newRequestId } from '../http/request-id.ts';
import { missingScope, type CallerAuthenticator, type McpCaller } from './caller.ts';
import { WARRANT_MCP_PATH, bearerChallenge, insufficientScopeChallenge } from './metadata.ts';
import type { McpOptions } from './options.ts';
import { STATELESS_PROTOCOL_VERSION, createToolServer, type RequestAuth } from './server.ts';
import { createSessionTable, newSessionId } from './sessions.ts';
import type { ToolRunner } from './tool-kit.ts';

// POST/GET/DELETE /mcp/warrant, served on the raw node:http request ahead of Fastify's router (as
// the proxy is): the SDK's transport reads and writes the node request itself. Every request is
// authenticated first, a session's too. Then:
// - `Mcp-Session-Id` present: the session, if it is this agent's (another's or an unknown id: 404);
// - no session id, an `initialize`: a new session (2025 session-based era);
// - no session id, anything else: the request stands alone (stateless; the 2026-07-28 era).

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

export interface EndpointDeps {
  authenticate: CallerAuthenticator;
  runner: ToolRunner;
  publicUrl: string;
  options: McpOptions;
  logger: Logger;
  /** Refused session uses, for the audit log. */
  audit(entry: AuditInput): void;
}

export function createMcpEndpoint(deps: EndpointDeps) {
  const { options, logger } = deps;
  const sessions = createSessionTable<Transport>({
    maxSessions: options.maxSessions,
    maxSessionsPerAgent: options.maxSessionsPerAgent,
    idleMs: options.sessionIdleMs,
    onClose: (t) => void (t as Transport).close().catch(() => undefined),
  });

  function sendProblem(res: ServerResponse, err: WarrantError, requestId: string, extraHeaders: Record<string, string> = {}): void {
    if (res.headersSent) return void res.destroy();
    const { status, headers, body } = problemResponse(err, requestId);
    res.writeHead(status, { ...headers, ...extraHeaders, 'warrant-request-id': requestId });
    res.end(body);
  }

  /** JSON-RPC's own answer for an unknown (or another agent's) session, as the SDK gives it. */
  function sessionNotFound(res: ServerResponse): void {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
  }

  /** A tools/call of a tool whose scope the access token lacks: 403 `insufficient_scope` (step-up), true when sent. */
  function refusedScope(res: ServerResponse, body: unknown, caller: McpCaller, requestId: string): boolean {
    const needed = missingScope(body, caller, deps.runner.scopeOf);
    if (!needed) return false;
    const err = new WarrantError('policy_denied', `this access token does not carry the ${needed} scope; ask the authorization server for it`, { required_scope: needed });
    sendProblem(res, err, requestId, { 'www-authenticate': insufficientScopeChallenge(deps.publicUrl, [...caller.tokenScopes, needed]) });
    return true;
  }

  const withAuth = (req: IncomingMessage, caller: McpCaller, requestId: string) => {
    // The transport hands this to the tool handlers as `authInfo`; the credential itself is not in it.
    const auth: RequestAuth = { token: '', clientId: caller.agent.id, scopes: [...caller.scopes], extra: { caller, requestId } };
    return Object.assign(req, { auth });
  };

  async function openSession(req: IncomingMessage, res: ServerResponse, body: unknown, caller: McpCaller, requestId: string): Promise<void> {
    if (!sessions.makeRoom(caller.agent.id)) {
      throw new WarrantError('unavailable', 'this Warrant instance holds as many MCP sessions as it may; retry later, or call without a session (stateless)', { retry_after: 5 });
    }
    const id = newSessionId();
    const transport: Transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => id,
      enableJsonResponse: true,
      onsessioninitialized: (sid) => sessions.add(sid, caller.agent.id, transport),
      onsessionclosed: (sid) => sessions.remove(sid),
    });
    transport.onclose = () => sessions.remove(id);
    await createToolServer(deps.runner).connect(transport);
    await transport.handleRequest(withAuth(req, caller, requestId), res, body);
  }

  async function stateless(req: IncomingMessage, res: ServerResponse, body: unknown, caller: McpCaller, requestId: string): Promise<void> {
    // The SDK speaks the 2025 revisions; a 2026-07-28 request is the same tools/call or tools/list
    // without a session, so it is handed over under the newest revision the SDK knows.
    if (req.headers['mcp-protocol-version'] === STATELESS_PROTOCOL_VERSION) {
      req.headers['mcp-protocol-version'] = LATEST_PROTOCOL_VERSION;
      // The SDK's node adapter builds its Request from the raw header list.
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'mcp-protocol-version') req.rawHeaders[i + 1] = LATEST_PROTOCOL_VERSION;
    }
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    const server = createToolServer(deps.runner);
    res.once('close', () => void server.close().catch(() => undefined));
    await server.connect(transport);
    await transport.handleRequest(withAuth(req, caller, requestId), res, body);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = newRequestId();
    try {
      const bearer = bearerFrom(req.headers.authorization);
      let caller: McpCaller;
      try {
        caller = await deps.authenticate(bearer);
      } catch (err) {
        if (isWarrantError(err, 'agent_unauthenticated')) {
          // RFC 9728 §5.1: the challenge names the metadata, from which a client finds the authorization server.
          return sendProblem(res, err, requestId, { 'www-authenticate': bearerChallenge(deps.publicUrl, bearer !== undefined || req.headers.authorization !== undefined) });
        }
        throw err;
      }
      const method = req.method ?? '';
      if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
        res.writeHead(405, { allow: 'GET, POST, DELETE' });
        return void res.end();
      }
      const sid = req.headers['mcp-session-id'];
      if (typeof sid === 'string' && sid) {
        const session = sessions.get(sid, caller.agent.id);
        if (!session) {
          if (sessions.heldByOther(sid, caller.agent.id)) {
            logger.warn({ agent: caller.agent.id, request_id: requestId }, "an MCP session id was presented with another agent's credential; refused");
            deps.audit({ type: 'mcp.session_refused', actor: `agent:${caller.agent.id}`, data: { reason: 'other_agent', request_id: requestId } });
          }
          return sessionNotFound(res);
        }
        const body = method === 'POST' ? await readBody(req, options.requestBodyLimitBytes) : undefined;
        if (refusedScope(res, body, caller, requestId)) return;
        return await session.value.handleRequest(withAuth(req, caller, requestId), res, body);
      }
      if (method !== 'POST') {
        // No standalone stream and nothing to delete without a session.
        res.writeHead(405, { allow: 'POST' });
        return void res.end();
      }
      const body = await readBody(req, options.requestBodyLimitBytes);
      if (refusedScope(res, body, caller, requestId)) return;
      const opening = Array.isArray(body) ? body.some(isInitializeRequest) : isInitializeRequest(body);
      if (opening) return await openSession(req, res, body, caller, requestId);
      return await stateless(req, res, body, caller, requestId);
    } catch (err) {
      const problem = asProblem(err);
      if (problem.code === 'internal_error' || problem.code === 'unavailable') logger.error({ err: problem.cause ?? err, request_id: requestId }, 'mcp request failed');
      sendProblem(res, problem, requestId, req.complete ? {} : { connection: 'close' });
    }
  }

  return {
    /** Takes the request when it is for /mcp/warrant; false leaves it to Fastify. */
    route(req: IncomingMessage, res: ServerResponse): boolean {
      const url = req.url ?? '';
      const path = url.split('?', 1)[0];
      if (path !== WARRANT_MCP_PATH && path !== `${WARRANT_MCP_PATH}/`) return false;
      void handle(req, res);
      return true;
    },
    sessionCount: () => sessions.size(),
    close: () => sessions.close(),
  };
}

export type McpEndpoint = ReturnType<typeof createMcpEndpoint>;
