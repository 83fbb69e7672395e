import type { AuthenticatedAgent } from '../agents/index.ts';
import { API_KEY_PREFIX } from '../agents/index.ts';
import { WarrantError } from '../errors/index.ts';

// Who is calling /mcp/warrant: an agent by its API key (`Authorization: Bearer wrt_…`), or an
// RFC 9068 JWT access token from Warrant's own authorization server (authz/), audience-bound to
// this endpoint, whose client is an agent. Either way the tools see one thing: an agent identity
// and the Warrant scopes it may use here.

/** Scopes of Warrant's own MCP server; each tool needs one (RFC 9728 `scopes_supported`). */
export const MCP_SCOPES = {
  read: 'warrant:read',
  call: 'warrant:call',
  request: 'warrant:request',
} as const;
export type McpScope = (typeof MCP_SCOPES)[keyof typeof MCP_SCOPES];
export const ALL_MCP_SCOPES: readonly McpScope[] = Object.freeze(Object.values(MCP_SCOPES));
const isMcpScope = (s: string): s is McpScope => (ALL_MCP_SCOPES as readonly string[]).includes(s);

export interface McpCaller {
  agent: AuthenticatedAgent;
  /** How the caller proved who it is. */
  via: 'agent_key' | 'access_token';
  /** Warrant scopes this credential carries at /mcp/warrant (an agent key carries all; its grants still bound what it reaches). */
  scopes: readonly McpScope[];
  /** Every scope the credential carries (an access token's whole `scope`), for a step-up that adds to it. */
  tokenScopes: readonly string[];
}

export type CallerAuthenticator = (bearer: string | undefined) => Promise<McpCaller>;

/** authz's verifier (src/authz/verify.ts), as this layer needs it. */
export type AccessTokenVerifier = (token: string, opts: { resource: string }) => Promise<{ agent: AuthenticatedAgent; scopes: string[] }>;

/**
 * The one place a bearer becomes a caller. Throws `agent_unauthenticated` (401 `invalid_token`)
 * for a missing, malformed, unknown, revoked or expired credential, an access token for another
 * resource, expired, or whose agent or owner is gone.
 */
export function createCallerAuthenticator(deps: {
  authenticateAgent(bearer: string | undefined): Promise<AuthenticatedAgent>;
  /** Warrant's access tokens are accepted when given. */
  verifyAccessToken?: AccessTokenVerifier;
  /** The `aud` a token for /mcp/warrant carries (`{issuer}/mcp/warrant`). */
  resource?: () => string;
}): CallerAuthenticator {
  return async (bearer) => {
    if (bearer && deps.verifyAccessToken && deps.resource && !bearer.startsWith(API_KEY_PREFIX)) {
      if (bearer.split('.').length !== 3) throw new WarrantError('agent_unauthenticated', 'the credential is neither an agent API key nor an access token');
      const verified = await deps.verifyAccessToken(bearer, { resource: deps.resource() });
      return { agent: verified.agent, via: 'access_token', scopes: Object.freeze(verified.scopes.filter(isMcpScope)), tokenScopes: Object.freeze([...verified.scopes]) };
    }
    return { agent: await deps.authenticateAgent(bearer), via: 'agent_key', scopes: ALL_MCP_SCOPES, tokenScopes: ALL_MCP_SCOPES };
  };
}

/**
 * RFC 6750 §3.1 step-up: the scope a JSON-RPC request needs that the caller lacks (a `tools/call`
 * of a tool whose scope the token does not carry), or undefined. `scopeOf` names a tool's scope.
 */
export function missingScope(body: unknown, caller: McpCaller, scopeOf: (tool: string) => McpScope | undefined): McpScope | undefined {
  const messages = Array.isArray(body) ? body : [body];
  for (const m of messages) {
    if (!m || typeof m !== 'object') continue;
    const { method, params } = m as { method?: unknown; params?: { name?: unknown } };
    if (method !== 'tools/call' || typeof params?.name !== 'string') continue;
    const needed = scopeOf(params.name);
    if (needed && !caller.scopes.includes(needed)) return needed;
  }
  return undefined;
}
