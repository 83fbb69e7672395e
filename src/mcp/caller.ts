import type { AuthenticatedAgent } from '../agents/index.ts';

// Who is calling /mcp/warrant. Today: an agent by its API key (`Authorization: Bearer wrt_…`).
// Tomorrow: also an RFC 9068 JWT access token from Warrant's own authorization server (authz/),
// audience-bound to this endpoint, whose client is an agent. Either way the tools see one thing:
// an agent identity and the Warrant scopes it may use here. Only `createCallerAuthenticator`
// changes when JWTs arrive.

/** Scopes of Warrant's own MCP server; each tool needs one (RFC 9728 `scopes_supported`). */
export const MCP_SCOPES = {
  read: 'warrant:read',
  call: 'warrant:call',
  request: 'warrant:request',
} as const;
export type McpScope = (typeof MCP_SCOPES)[keyof typeof MCP_SCOPES];
export const ALL_MCP_SCOPES: readonly McpScope[] = Object.freeze(Object.values(MCP_SCOPES));

export interface McpCaller {
  agent: AuthenticatedAgent;
  /** How the caller proved who it is. */
  via: 'agent_key';
  /** Warrant scopes this credential carries at /mcp/warrant (an agent key carries all; its grants still bound what it reaches). */
  scopes: readonly McpScope[];
}

export type CallerAuthenticator = (bearer: string | undefined) => Promise<McpCaller>;

/**
 * The one place a bearer becomes a caller. Throws `agent_unauthenticated` (the agent layer's
 * error) for a missing, malformed, unknown, revoked or expired credential.
 */
export function createCallerAuthenticator(deps: { authenticateAgent(bearer: string | undefined): Promise<AuthenticatedAgent> }): CallerAuthenticator {
  return async (bearer) => ({ agent: await deps.authenticateAgent(bearer), via: 'agent_key', scopes: ALL_MCP_SCOPES });
}
