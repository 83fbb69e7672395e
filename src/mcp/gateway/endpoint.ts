import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION, isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { WarrantError, isWarrantError, notFound } from '../../errors/index.ts';
import { bearerFrom } from '../../http/auth.ts';
import { asProblem, problemResponse } from '../../http/problems.ts';
import { newRequestId } from '../../http/request-id.ts';
import { readBody } from '../endpoint.ts';
import type { McpOptions } from '../options.ts';
import { STATELESS_PROTOCOL_VERSION } from '../server.ts';
import { createSessionTable, newSessionId } from '../sessions.ts';
import { GATEWAY_SCOPE, type GatewayAuthenticator, type GatewayCaller } from './auth.ts';
import type { Relay, RelayContext } from './relay.ts';
import { SERVER_NAME, type Servers } from './servers.ts';

// POST/GET/DELETE /mcp/{server} on the raw node:http request, as /mcp/warrant: every request is
// authenticated (a session's too) with an access token for exactly this endpoint; a session is
// bound to the agent and the server that opened it; an `initialize` opens one (2025 era), anything
// else without a session stands alone (2026-07-28, stateless).

type Transport = StreamableHTTPServerTransport;

export const gatewayMetadataPath = (name: string) => `/.well-known/oauth-protected-resource/mcp/${name}`;

/** RFC 6750 §3 / RFC 9728 §5.1; `error` only when a credential was sent. */
export function gatewayChallenge(base: string, name: string, error?: 'invalid_token' | 'insufficient_scope'): string {
  const parts = [`resource_metadata="${base}${gatewayMetadataPath(name)}"`, `scope="${GATEWAY_SCOPE}"`];
  if (error) parts.push(`error="${error}"`);
  return `Bearer ${parts.join(', ')}`;
}

export function createGatewayEndpoint(deps: {
  authenticate: GatewayAuthenticator;
  servers: Servers;
  relay: Relay;
  /** The public base (`{public}`): audiences and metadata URLs are made from it. */
  base(): string;
  options: McpOptions;
  logger: Logger;
}) {
  const { options, logger } = deps;
  const sessions = createSessionTable<Transport>({
    maxSessions: options.maxSessions,
    maxSessionsPerAgent: options.maxSessionsPerAgent,
    idleMs: options.sessionIdleMs,
    onClose: (t) => void (t as Transport).close().catch(() => undefined),
  });

  function sendProblem(res: ServerResponse, err: WarrantError, requestId: string, extra: Record<string, string> = {}): void {
    if (res.headersSent) return void res.destroy();
    const { status, headers, body } = problemResponse(err, requestId);
    res.writeHead(status, { ...headers, ...extra, 'warrant-request-id': requestId });
    res.end(body);
  }

  const withAuth = (req: IncomingMessage, caller: GatewayCaller, requestId: string) => {
    const extra: RelayContext & Record<string, unknown> = { caller, requestId };
    // The transport hands this to the handlers as `authInfo`; the token itself is not in it.
    return Object.assign(req, { auth: { token: '', clientId: caller.clientId, scopes: caller.scopes, extra } });
  };

  async function handle(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const requestId = newRequestId();
    try {
      const server = await deps.servers.get(name);
      if (!server) throw notFound(`MCP server ${name}`);
      const bearer = bearerFrom(req.headers.authorization);
      let caller: GatewayCaller;
      try {
        caller = await deps.authenticate(bearer, `${deps.base()}/mcp/${name}`);
      } catch (err) {
        if (isWarrantError(err, 'agent_unauthenticated')) {
          const sent = bearer !== undefined || req.headers.authorization !== undefined;
          return sendProblem(res, err, requestId, { 'www-authenticate': gatewayChallenge(deps.base(), name, sent ? 'invalid_token' : undefined) });
        }
        throw err;
      }
      if (!caller.scopes.includes(GATEWAY_SCOPE)) {
        // RFC 6750 §3.1: step-up names the whole scope set the resource needs.
        const err = new WarrantError('policy_denied', `the access token lacks the ${GATEWAY_SCOPE} scope`, { required_scope: GATEWAY_SCOPE });
        return sendProblem(res, err, requestId, { 'www-authenticate': gatewayChallenge(deps.base(), name, 'insufficient_scope') });
      }
      const method = req.method ?? '';
      if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
        res.writeHead(405, { allow: 'GET, POST, DELETE' });
        return void res.end();
      }
      const owner = `${caller.agentId}|${name}`;
      const sid = req.headers['mcp-session-id'];
      if (typeof sid === 'string' && sid) {
        const session = sessions.get(sid, owner);
        if (!session) {
          res.writeHead(404, { 'content-type': 'application/json' });
          return void res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
        }
        const body = method === 'POST' ? await readBody(req, options.requestBodyLimitBytes) : undefined;
        return await session.value.handleRequest(withAuth(req, caller, requestId), res, body);
      }
      if (method !== 'POST') {
        res.writeHead(405, { allow: 'POST' });
        return void res.end();
      }
      const body = await readBody(req, options.requestBodyLimitBytes);
      const opening = Array.isArray(body) ? body.some(isInitializeRequest) : isInitializeRequest(body);
      if (opening) {
        if (!sessions.makeRoom(owner)) throw new WarrantError('unavailable', 'this Warrant instance holds as many MCP sessions as it may; retry later, or call without a session', { retry_after: 5 });
        const id = newSessionId();
        const transport: Transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => id,
          enableJsonResponse: true,
          onsessioninitialized: (s) => sessions.add(s, owner, transport),
          onsessionclosed: (s) => sessions.remove(s),
        });
        transport.onclose = () => sessions.remove(id);
        await deps.relay.serverFor(server).connect(transport);
        return await transport.handleRequest(withAuth(req, caller, requestId), res, body);
      }
      if (req.headers['mcp-protocol-version'] === STATELESS_PROTOCOL_VERSION) {
        req.headers['mcp-protocol-version'] = LATEST_PROTOCOL_VERSION;
        for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'mcp-protocol-version') req.rawHeaders[i + 1] = LATEST_PROTOCOL_VERSION;
      }
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      const s = deps.relay.serverFor(server);
      res.once('close', () => void s.close().catch(() => undefined));
      await s.connect(transport);
      await transport.handleRequest(withAuth(req, caller, requestId), res, body);
    } catch (err) {
      const problem = asProblem(err);
      if (problem.code === 'internal_error' || problem.code === 'unavailable') logger.error({ err: problem.cause ?? err, request_id: requestId }, 'mcp gateway request failed');
      sendProblem(res, problem, requestId, req.complete ? {} : { connection: 'close' });
    }
  }

  return {
    /** Takes `/mcp/{name}` for any name but `warrant` (Warrant's own server routes first). */
    route(req: IncomingMessage, res: ServerResponse): boolean {
      const path = (req.url ?? '').split('?', 1)[0]!;
      const m = /^\/mcp\/([^/]+)\/?$/.exec(path);
      if (!m || m[1] === 'warrant' || !SERVER_NAME.test(m[1]!)) return false;
      void handle(req, res, m[1]!);
      return true;
    },
    sessionCount: () => sessions.size(),
    close: () => sessions.close(),
  };
}
