import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ALL_MCP_SCOPES } from './caller.ts';

/** Where Warrant's own MCP server answers. */
export const WARRANT_MCP_PATH = '/mcp/warrant';
/** RFC 9728 §3.1: the well-known suffix is inserted between the host and the resource's path. */
export const WARRANT_MCP_METADATA_PATH = `/.well-known/oauth-protected-resource${WARRANT_MCP_PATH}`;

/** RFC 9728 §2: the document's members Warrant answers (the response schema of every metadata route). */
export const protectedResource = z.object({
  resource: z.string(),
  authorization_servers: z.array(z.string()),
  scopes_supported: z.array(z.string()),
  bearer_methods_supported: z.array(z.string()),
  resource_name: z.string(),
  resource_documentation: z.string().optional(),
});

/** RFC 9728 §2: the protected resource metadata of /mcp/warrant. Warrant is its own authorization server. */
export function protectedResourceMetadata(publicUrl: string): z.infer<typeof protectedResource> {
  return {
    resource: `${publicUrl}${WARRANT_MCP_PATH}`,
    authorization_servers: [publicUrl],
    scopes_supported: [...ALL_MCP_SCOPES],
    // RFC 6750 §2.1 only: a token in a query or a form body ends up in logs.
    bearer_methods_supported: ['header'],
    resource_name: "Warrant's MCP server",
  };
}

/**
 * The challenge of a 401 (RFC 6750 §3, RFC 9728 §5.1): where the metadata is, and `invalid_token`
 * when a credential was sent but refused (none is named when none was sent, RFC 6750 §3.1).
 */
export function bearerChallenge(publicUrl: string, credentialSent: boolean): string {
  const parts = [`resource_metadata="${publicUrl}${WARRANT_MCP_METADATA_PATH}"`, `scope="${ALL_MCP_SCOPES.join(' ')}"`];
  if (credentialSent) parts.push('error="invalid_token"');
  return `Bearer ${parts.join(', ')}`;
}

/**
 * The challenge of a 403 for a missing scope (RFC 6750 §3.1, the MCP step-up): `scope` names the
 * whole set the client should ask for — what its token carries plus what is needed — so a client
 * that replaces its scope set on step-up does not lose what it had.
 */
export function insufficientScopeChallenge(publicUrl: string, scopes: readonly string[]): string {
  const all = [...new Set(scopes)].join(' ');
  return `Bearer error="insufficient_scope", scope="${all}", resource_metadata="${publicUrl}${WARRANT_MCP_METADATA_PATH}"`;
}

/** GET /.well-known/oauth-protected-resource/mcp/warrant: open on purpose (RFC 9728 §3), holds no secret. */
export function mcpMetadataRoutes(publicUrl: string) {
  return async (app: FastifyInstance) => {
    app.withTypeProvider<ZodTypeProvider>().get(
      WARRANT_MCP_METADATA_PATH,
      {
        schema: {
          tags: ['mcp'],
          summary: 'Protected resource metadata of /mcp/warrant (RFC 9728)',
          description: "Names the resource `{public}/mcp/warrant`, its authorization server (Warrant's own), the scopes and the bearer method. Open: it holds no secret.",
          response: { 200: protectedResource },
        },
      },
      async (_req, reply) => {
        reply.header('cache-control', 'public, max-age=300');
        return protectedResourceMetadata(publicUrl);
      },
    );
  };
}
