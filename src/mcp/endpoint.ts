import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { API_KEY_PREFIX } from '../agents/index.ts';
import { WarrantError, isWarrantError } from '../errors/index.ts';
import { bearerFrom } from '../http/auth.ts';
import { newRequestId } from '../http/request-id.ts';
import { missingScope, type CallerAuthenticator, type McpCaller } from './caller.ts';
import { createMcpHttp, sendProblem, type RefusalAudit } from './http.ts';
import { WARRANT_MCP_PATH, bearerChallenge, insufficientScopeChallenge } from './metadata.ts';
import type { McpOptions } from './options.ts';
import { createToolServer, type RequestAuth } from './server.ts';
import type { ToolRunner } from './tool-kit.ts';

// POST/GET/DELETE /mcp/warrant, served on the raw node:http request ahead of Fastify's router (as
// the proxy is): the SDK's transport reads and writes the node request itself. Every request is
// authenticated first, a session's too; then http.ts serves it (session, new session, stateless).
// Every refused credential and every foreign session id is audited (RefusalAudit).

export interface EndpointDeps {
  authenticate: CallerAuthenticator;
  runner: ToolRunner;
  publicUrl: string;
  options: McpOptions;
  logger: Logger;
  /** Refused credentials and session ids, for the audit log. */
  refusals: RefusalAudit;
}

export function createMcpEndpoint(deps: EndpointDeps) {
  const { logger } = deps;
  const http = createMcpHttp({ options: deps.options, logger, name: 'mcp' });

  /** A tools/call of a tool whose scope the access token lacks: 403 `insufficient_scope` (step-up), true when sent. */
  function refusedScope(res: ServerResponse, body: unknown, caller: McpCaller, requestId: string): boolean {
    const needed = missingScope(body, caller, deps.runner.scopeOf);
    if (!needed) return false;
    const err = new WarrantError('policy_denied', `this access token does not carry the ${needed} scope; ask the authorization server for it`, { required_scope: needed });
    deps.refusals.token(WARRANT_MCP_PATH, err, requestId, { agentId: caller.agent.id, status: 403, reason: 'insufficient_scope', requiredScope: needed });
    sendProblem(res, err, requestId, { 'www-authenticate': insufficientScopeChallenge(deps.publicUrl, [...caller.tokenScopes, needed]) });
    return true;
  }

  const withAuth = (req: IncomingMessage, caller: McpCaller, requestId: string) => {
    // The transport hands this to the tool handlers as `authInfo`; the credential itself is not in it.
    const auth: RequestAuth = { token: '', clientId: caller.agent.id, scopes: [...caller.scopes], extra: { caller, requestId } };
    return Object.assign(req, { auth });
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = newRequestId();
    try {
      const bearer = bearerFrom(req.headers.authorization);
      let caller: McpCaller;
      try {
        caller = await deps.authenticate(bearer);
      } catch (err) {
        if (isWarrantError(err, 'agent_unauthenticated')) {
          const sent = bearer !== undefined || req.headers.authorization !== undefined;
          // No credential at all is a client's first step (discovery), not a refusal of one.
          if (sent) deps.refusals.token(WARRANT_MCP_PATH, err, requestId, bearer?.startsWith(API_KEY_PREFIX) ? { reason: 'agent_key_invalid' } : {});
          // RFC 9728 §5.1: the challenge names the metadata, from which a client finds the authorization server.
          return sendProblem(res, err, requestId, { 'www-authenticate': bearerChallenge(deps.publicUrl, sent) });
        }
        throw err;
      }
      return await http.serve({
        req: withAuth(req, caller, requestId),
        res,
        owner: caller.agent.id,
        newServer: () => createToolServer(deps.runner),
        refuse: (body) => refusedScope(res, body, caller, requestId),
        foreignSession: () => {
          logger.warn({ agent: caller.agent.id, request_id: requestId }, "an MCP session id was presented with another agent's credential; refused");
          deps.refusals.session(WARRANT_MCP_PATH, caller.agent.id, 'other_agent', requestId);
        },
      });
    } catch (err) {
      http.fail(req, res, err, requestId);
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
    sessionCount: http.sessionCount,
    close: http.close,
  };
}

export type McpEndpoint = ReturnType<typeof createMcpEndpoint>;
