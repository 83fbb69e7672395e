// Warrant's own MCP server at /mcp/warrant (DESIGN.md, "mcp/"): tools for agents over Streamable
// HTTP, both protocol eras, with RFC 9728 metadata. The gateway in front of remote MCP servers
// (/mcp/{server}) lives beside it (gateway/); both serve Streamable HTTP through http.ts.
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuthenticatedAgent } from '../agents/index.ts';
import type { AuditLog, AuditQueue, EventBus } from '../events/index.ts';
import type { Forwarder } from '../proxy/index.ts';
import type { Limits } from '../limits/index.ts';
import type { Provider } from '../providers/index.ts';
import type { Store } from '../store/index.ts';
import type { ConnectFlow } from '../tokens/index.ts';
import { createCallerAuthenticator, type AccessTokenVerifier } from './caller.ts';
import { createMcpEndpoint } from './endpoint.ts';
import { createRefusalAudit } from './http.ts';
import { mcpMetadataRoutes } from './metadata.ts';
import { mcpDefaults, type McpOptions } from './options.ts';
import { argumentsHasher, createToolRunner } from './tool-kit.ts';
import { accessTool } from './tools/access.ts';
import { callApiTool } from './tools/call-api.ts';
import { connectionTools } from './tools/connections.ts';
import { providerTool } from './tools/providers.ts';

export { MCP_SCOPES, ALL_MCP_SCOPES, createCallerAuthenticator, type McpCaller, type McpScope, type CallerAuthenticator } from './caller.ts';
export { WARRANT_MCP_PATH, WARRANT_MCP_METADATA_PATH, protectedResourceMetadata, bearerChallenge, insufficientScopeChallenge } from './metadata.ts';
export { STATELESS_PROTOCOL_VERSION } from './server.ts';
export { mcpDefaults, type McpOptions } from './options.ts';

export interface WarrantMcpDeps {
  publicUrl: string;
  store: Store;
  catalog: Map<string, Provider>;
  forwarder: Forwarder;
  connect: ConnectFlow;
  audit: AuditLog;
  auditQueue: AuditQueue;
  bus: EventBus;
  limits?: Limits;
  logger: Logger;
  authenticateAgent(bearer: string | undefined): Promise<AuthenticatedAgent>;
  /** Warrant's own access tokens (authz's verifier) and the `aud` they must carry here; agent keys only without. */
  verifyAccessToken?: AccessTokenVerifier;
  accessTokenResource?: () => string;
  /** The audit chain key: tool arguments are recorded as an HMAC under a key derived from it. */
  chainKey: KeyObject;
  options?: Partial<McpOptions>;
}

export function createWarrantMcp(deps: WarrantMcpDeps) {
  const options: McpOptions = { ...mcpDefaults, ...deps.options };
  const appendAudit = async (entry: Parameters<AuditLog['append']>[0]) => deps.bus.publish(await deps.audit.append(entry));
  const runner = createToolRunner({
    tools: [
      ...connectionTools({ store: deps.store, statusUrl: (row) => deps.connect.statusUrl(row) }),
      callApiTool({ forwarder: deps.forwarder, limits: deps.limits, bodyLimitBytes: options.callBodyLimitBytes, responseLimitBytes: options.callResponseLimitBytes }),
      providerTool({ catalog: deps.catalog }),
      accessTool({ store: deps.store, connect: deps.connect, catalog: deps.catalog, audit: appendAudit }),
    ],
    auditQueue: deps.auditQueue,
    hashArguments: argumentsHasher(deps.chainKey),
    logger: deps.logger,
    deadlineMs: options.toolDeadlineMs,
  });
  const endpoint = createMcpEndpoint({
    authenticate: createCallerAuthenticator({ authenticateAgent: deps.authenticateAgent, verifyAccessToken: deps.verifyAccessToken, resource: deps.accessTokenResource }),
    runner,
    publicUrl: deps.publicUrl,
    options,
    logger: deps.logger,
    refusals: createRefusalAudit({ auditQueue: deps.auditQueue, logger: deps.logger }),
  });
  return {
    /** The raw node:http route of /mcp/warrant (AppDeps.rawRoutes). */
    rawRoute: endpoint.route,
    /** GET /.well-known/oauth-protected-resource/mcp/warrant (AppDeps.routes). */
    routes: mcpMetadataRoutes(deps.publicUrl),
    tools: runner,
    sessionCount: endpoint.sessionCount,
    /** Closes every session (shutdown). */
    close: endpoint.close,
  };
}

export type WarrantMcp = ReturnType<typeof createWarrantMcp>;
