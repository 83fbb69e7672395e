import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { notFound } from '../../errors/index.ts';
import { SERVER_NAME, viewOfServer, type Gateway } from '../../mcp/gateway/index.ts';
import type { RouteContext } from '../app.ts';
import { adminActorOf } from '../auth.ts';

// Admin API of the MCP gateway: register a remote MCP server (its auth is discovered, Warrant
// identifies itself there), list and delete them, and set an agent's tool allow-list on one.

const name = z.object({ name: z.string().regex(SERVER_NAME) });

const registerBody = z.strictObject({
  url: z.string().min(1).max(2048),
  name: z.string().regex(SERVER_NAME, 'is 1 to 40 lower-case letters, digits and "-"'),
  /** A client pre-registered at the server's authorization server; without it, RFC 7591 registration. */
  client_id: z.string().min(1).max(512).optional(),
  client_secret: z.string().min(1).max(2048).optional(),
  /**
   * `client_credentials` (SEP-1046): a machine grant with the pre-registered `client_id` and its
   * `client_secret` or `private_key`, made now for `owner`, no consent. Default: authorization_code.
   */
  grant_type: z.enum(['authorization_code', 'client_credentials']).optional(),
  /** PKCS#8 PEM private key (EC P-256 or RSA) of a private_key_jwt client; sealed, never answered. */
  private_key: z.string().min(1).max(16384).optional(),
  /** With client_credentials: the person whose connection the machine grant is (offboarding reaches it). */
  owner: z.string().trim().min(1).max(320).optional(),
});

// The response schema is the guard: no client secret goes out.
const serverView = z.object({
  name: z.string(),
  url: z.string(),
  provider: z.string(),
  endpoint: z.string(),
  resource: z.string(),
  issuer: z.string(),
  client_id: z.string(),
  client_source: z.enum(['pre_registered', 'client_metadata_document', 'dynamic_registration']),
  scopes: z.array(z.string()),
  grant_type: z.enum(['authorization_code', 'client_credentials']),
  token_endpoint_auth_method: z.string(),
  /** client_credentials: whose connection the machine grant is, and that connection. */
  owner: z.string().optional(),
  connection: z.string().optional(),
  created_at: z.string(),
});

const allowlistBody = z.strictObject({
  /** Tool names the agent may call on this server; `null`: every tool. */
  tools: z.array(z.string().min(1).max(128)).max(500).nullable(),
});

export function mcpServerRoutes(gateway: Gateway, agents: { get(id: string): Promise<unknown> }) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    r.addHook('onRequest', ctx.requireAdmin);
    const tags = ['mcp'];
    const security = [{ admin: [] }];

    r.post(
      '/v1/mcp-servers',
      {
        schema: {
          tags,
          security,
          summary: 'Register a remote MCP server behind the gateway',
          description:
            "Discovers the server's authorization (RFC 9728 protected resource metadata, its authorization server's metadata) and how Warrant identifies itself there " +
            '(a pre-registered client, its client ID metadata document, or dynamic registration), then serves it at `/mcp/{name}`. With `client_credentials`, ' +
            "the machine grant is made now for `owner`. A client secret or private key is sealed and never answered.",
          problems: ['conflict', 'upstream_unavailable'],
          body: registerBody,
          response: { 201: serverView },
        },
      },
      async (req, reply) => {
      const s = await gateway.servers.register(req.body, adminActorOf(req));
        return reply.code(201).send(viewOfServer(s, gateway.base()));
      },
    );

    r.get(
      '/v1/mcp-servers',
      { schema: { tags, security, summary: 'List MCP servers', description: 'Every registered server with its endpoint on Warrant, issuer, client and scopes. Never a secret.', response: { 200: z.object({ servers: z.array(serverView) }) } } },
      async () => ({
        servers: (await gateway.servers.list()).map((s) => viewOfServer(s, gateway.base())),
      }),
    );

    r.get('/v1/mcp-servers/:name', { schema: { tags, security, summary: 'Read an MCP server', description: 'One registered server. Never a secret.', problems: ['not_found'], params: name, response: { 200: serverView } } }, async (req) => {
      const s = await gateway.servers.get(req.params.name);
      if (!s) throw notFound(`MCP server ${req.params.name}`);
      return viewOfServer(s, gateway.base());
    });

    r.delete(
      '/v1/mcp-servers/:name',
      {
        schema: {
          tags,
          security,
          summary: 'Delete an MCP server',
          description: 'Stops serving `/mcp/{name}`; its sessions end.',
          problems: ['not_found'],
          params: name,
          response: { 200: z.object({ name: z.string(), deleted: z.literal(true) }) },
        },
      },
      async (req) => {
        await gateway.servers.remove(req.params.name, adminActorOf(req));
        return { name: req.params.name, deleted: true as const };
      },
    );

    r.put(
      '/v1/mcp-servers/:name/agents/:agent/tools',
      {
        schema: {
          tags,
          security,
          summary: "Set an agent's tool allow-list on a server",
          description: 'The tools the agent may call on this server through the gateway; `null`: every tool. Others are refused before the server is called.',
          problems: ['not_found'],
          params: name.extend({ agent: z.string().min(1).max(64) }),
          body: allowlistBody,
          response: { 200: z.object({ server: z.string(), agent: z.string(), tools: z.array(z.string()).nullable() }) },
        },
      },
      async (req) => {
        if (!(await gateway.servers.get(req.params.name))) throw notFound(`MCP server ${req.params.name}`);
        await agents.get(req.params.agent); // not_found for an unknown agent
        await gateway.allowlists.set(req.params.agent, req.params.name, req.body.tools);
        return { server: req.params.name, agent: req.params.agent, tools: await gateway.allowlists.get(req.params.agent, req.params.name) ?? null };
      },
    );
  };
}
