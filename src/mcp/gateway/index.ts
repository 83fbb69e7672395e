// The MCP gateway (DESIGN.md, "mcp/"): `/mcp/{server}` in front of remote MCP servers. A registered
// server is a provider (`mcp-<name>`), its upstream grant a connection under the token lifecycle;
// downstream, Warrant is the resource server and its own authorization server issues the tokens.
import type { KeyObject } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { notFound } from '../../errors/index.ts';
import type { AuditLog, AuditQueue, EventBus } from '../../events/index.ts';
import type { Provider } from '../../providers/index.ts';
import type { Store } from '../../store/index.ts';
import type { ClientResolver, ConnectionService, TokenService } from '../../tokens/index.ts';
import { createRefusalAudit } from '../http.ts';
import { protectedResource } from '../metadata.ts';
import { mcpDefaults, type McpOptions } from '../options.ts';
import { argumentsHasher } from '../tool-kit.ts';
import { createAllowlists } from './allowlists.ts';
import { CLIENT_METADATA_PATH, clientMetadataRoute } from './client-metadata.ts';
import { createGatewayAuthenticator, GATEWAY_SCOPE, type AccessTokenVerifier } from './auth.ts';
import { createGuardedFetch } from './discovery.ts';
import { createGatewayEndpoint, gatewayMetadataPath } from './endpoint.ts';
import { createRelay } from './relay.ts';
import { createServers, SERVER_NAME } from './servers.ts';
import { createUpstreamClients } from './upstream.ts';

export { viewOfServer, providerIdOf, SERVER_NAME, type StoredServer, type RegisterInput } from './servers.ts';
export { gatewayChallenge, gatewayMetadataPath } from './endpoint.ts';

export interface GatewayDeps {
  /** WARRANT_PUBLIC_URL. */
  publicUrl: string;
  /** The authorization server's issuer (known once the port is bound). */
  issuer(): string;
  store: Store;
  catalog: Map<string, Provider>;
  tokens: TokenService;
  /** For a server registered with client credentials: its first token, and its connection. */
  clients: ClientResolver;
  connections: Pick<ConnectionService, 'saveGrant'>;
  audit: AuditLog;
  auditQueue: AuditQueue;
  bus: EventBus;
  logger: Logger;
  /** authz's verifier of its own access tokens (signature, audience, an active agent). */
  verifyAccessToken: AccessTokenVerifier;
  reconnectLink(connectionId: string): Promise<string | undefined>;
  /** A single-use connect link asking the owner of a connection to consent to `scopes` (a step-up). */
  stepUpLink?(connectionId: string, scopes: string[]): Promise<string | undefined>;
  /** WARRANT_CLIENT_METADATA_URL: where Warrant's client ID metadata document is published, if not at `{public}/oauth/client-metadata.json`. */
  clientMetadataUrl?: string;
  chainKey: KeyObject;
  allowedNetworks: readonly string[];
  allowInsecureHttp: boolean;
  redirectPerProvider: boolean;
  timeoutMs: number;
  now: () => number;
  options?: Partial<McpOptions>;
}

export function createGateway(deps: GatewayDeps) {
  const options: McpOptions = { ...mcpDefaults, ...deps.options };
  // The public base with the bound port (WARRANT_PORT=0): the issuer is its origin.
  const base = () => {
    const u = new URL(deps.publicUrl);
    return u.port === '0' ? `${deps.issuer()}${u.pathname.replace(/\/+$/, '')}` : deps.publicUrl.replace(/\/+$/, '');
  };
  const guard = createGuardedFetch({ allowedNetworks: deps.allowedNetworks, allowInsecureHttp: deps.allowInsecureHttp, timeoutMs: deps.timeoutMs });
  const clientMetadataUrl = () => deps.clientMetadataUrl ?? `${base()}${CLIENT_METADATA_PATH}`;
  const servers = createServers({ ...deps, guard, clientMetadataUrl, redirectPerProvider: deps.redirectPerProvider });
  const allowlists = createAllowlists({ store: deps.store, now: deps.now });
  const upstream = createUpstreamClients({ tokens: deps.tokens, guard, logger: deps.logger });
  const relay = createRelay({
    store: deps.store,
    upstream,
    allowlists,
    auditQueue: deps.auditQueue,
    hashArguments: argumentsHasher(deps.chainKey),
    reconnectLink: deps.reconnectLink,
    stepUpLink: deps.stepUpLink,
    bus: deps.bus,
    logger: deps.logger,
  });
  const endpoint = createGatewayEndpoint({
    authenticate: createGatewayAuthenticator(deps.verifyAccessToken),
    servers,
    relay,
    base,
    options,
    logger: deps.logger,
    refusals: createRefusalAudit({ auditQueue: deps.auditQueue, logger: deps.logger, now: deps.now }),
  });

  /** GET /.well-known/oauth-protected-resource/mcp/{name} (RFC 9728 §3): open, holds no secret. */
  const metadataRoutes = async (app: FastifyInstance) => {
    await clientMetadataRoute({ url: clientMetadataUrl, base, publicUrl: deps.publicUrl, redirectPerProvider: deps.redirectPerProvider, servers: () => servers.list() })(app);
    app.withTypeProvider<ZodTypeProvider>().get(
      gatewayMetadataPath(':name'),
      {
        schema: {
          tags: ['mcp'],
          summary: 'Protected resource metadata of a gateway endpoint (RFC 9728)',
          description: "Names the resource `{public}/mcp/{name}`, its authorization server (Warrant's own) and the scope `mcp`. Open: it holds no secret.",
          problems: ['not_found', 'invalid_request'],
          params: z.object({ name: z.string().regex(SERVER_NAME) }),
          response: { 200: protectedResource },
        },
      },
      async (req, reply) => {
        const s = await servers.get(req.params.name);
        if (!s) throw notFound(`MCP server ${req.params.name}`);
        reply.header('cache-control', 'public, max-age=300');
        return {
          resource: `${base()}/mcp/${s.name}`,
          authorization_servers: [deps.issuer()],
          scopes_supported: [GATEWAY_SCOPE],
          bearer_methods_supported: ['header'],
          resource_name: `${s.name} (through Warrant)`,
        };
      },
    );
  };

  return {
    servers,
    allowlists,
    base,
    /** Loads every registered server into the catalog (before listening). */
    load: () => servers.load(),
    rawRoute: endpoint.route,
    routes: metadataRoutes,
    sessionCount: endpoint.sessionCount,
    async close(): Promise<void> {
      endpoint.close();
      relay.close();
      await upstream.close();
      await guard.close().catch(() => undefined);
    },
  };
}

export type Gateway = ReturnType<typeof createGateway>;
