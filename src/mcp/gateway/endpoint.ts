import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { WarrantError, isWarrantError, notFound } from '../../errors/index.ts';
import { bearerFrom } from '../../http/auth.ts';
import { newRequestId } from '../../http/request-id.ts';
import { createMcpHttp, sendProblem, type RefusalAudit } from '../http.ts';
import type { McpOptions } from '../options.ts';
import { GATEWAY_SCOPE, type GatewayAuthenticator, type GatewayCaller } from './auth.ts';
import type { Relay, RelayContext } from './relay.ts';
import { SERVER_NAME, type Servers } from './servers.ts';

// POST/GET/DELETE /mcp/{server} on the raw node:http request, as /mcp/warrant: every request is
// authenticated (a session's too) with an access token for exactly this endpoint, then served by
// http.ts; a session is bound to the agent and the server that opened it. Every refused token and
// every foreign session id is audited (RefusalAudit).

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
  /** Refused tokens and session ids, for the audit log. */
  refusals: RefusalAudit;
}) {
  const { logger } = deps;
  const http = createMcpHttp({ options: deps.options, logger, name: 'mcp gateway' });

  const withAuth = (req: IncomingMessage, caller: GatewayCaller, requestId: string) => {
    const extra: RelayContext & Record<string, unknown> = { caller, requestId };
    // The transport hands this to the handlers as `authInfo`; the token itself is not in it.
    return Object.assign(req, { auth: { token: '', clientId: caller.clientId, scopes: caller.scopes, extra } });
  };

  async function handle(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const requestId = newRequestId();
    const endpoint = `/mcp/${name}`;
    try {
      const server = await deps.servers.get(name);
      if (!server) throw notFound(`MCP server ${name}`);
      const bearer = bearerFrom(req.headers.authorization);
      let caller: GatewayCaller;
      try {
        caller = await deps.authenticate(bearer, `${deps.base()}${endpoint}`);
      } catch (err) {
        if (isWarrantError(err, 'agent_unauthenticated')) {
          const sent = bearer !== undefined || req.headers.authorization !== undefined;
          // No credential at all is a client's first step (discovery), not a refusal of one.
          if (sent) deps.refusals.token(endpoint, err, requestId);
          return sendProblem(res, err, requestId, { 'www-authenticate': gatewayChallenge(deps.base(), name, sent ? 'invalid_token' : undefined) });
        }
        throw err;
      }
      if (!caller.scopes.includes(GATEWAY_SCOPE)) {
        // RFC 6750 §3.1: step-up names the whole scope set the resource needs.
        const err = new WarrantError('policy_denied', `the access token lacks the ${GATEWAY_SCOPE} scope`, { required_scope: GATEWAY_SCOPE });
        deps.refusals.token(endpoint, err, requestId, { agentId: caller.agentId, status: 403, reason: 'insufficient_scope', requiredScope: GATEWAY_SCOPE });
        return sendProblem(res, err, requestId, { 'www-authenticate': gatewayChallenge(deps.base(), name, 'insufficient_scope') });
      }
      return await http.serve({
        req: withAuth(req, caller, requestId),
        res,
        owner: `${caller.agentId}|${name}`,
        newServer: () => deps.relay.serverFor(server),
        foreignSession: (holder) => {
          const reason = holder.startsWith(`${caller.agentId}|`) ? 'other_server' : 'other_agent';
          logger.warn({ agent: caller.agentId, server: name, reason, request_id: requestId }, 'an MCP session id was presented by another agent or at another server; refused');
          deps.refusals.session(endpoint, caller.agentId, reason, requestId);
        },
      });
    } catch (err) {
      http.fail(req, res, err, requestId);
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
    sessionCount: http.sessionCount,
    close: http.close,
  };
}
