import { WarrantError } from '../../errors/index.ts';
import type { VerifiedAccessToken } from '../../authz/index.ts';

// Who calls /mcp/{server}: an RFC 9068 JWT access token of Warrant's own authorization server,
// audience-bound to exactly this endpoint (RFC 8707), whose client is an active agent of an owner
// still on board — authz's one verifier (src/authz/verify.ts) decides; an agent API key is not
// accepted here (a gateway token is audience-bound, a key is not).

export interface GatewayCaller {
  agentId: string;
  owner: string;
  clientId: string;
  scopes: string[];
}

/** The scope a token for a gateway endpoint carries (authz/resources.ts, `mcp`). */
export const GATEWAY_SCOPE = 'mcp';

export type AccessTokenVerifier = (token: string, opts: { resource: string }) => Promise<VerifiedAccessToken>;

export function createGatewayAuthenticator(verify: AccessTokenVerifier) {
  /** Throws `agent_unauthenticated` (401) for anything but a valid token for `audience`. */
  return async (bearer: string | undefined, audience: string): Promise<GatewayCaller> => {
    if (!bearer) throw new WarrantError('agent_unauthenticated', 'a bearer access token from Warrant’s authorization server is required');
    const { agentId, owner, clientId, scopes } = await verify(bearer, { resource: audience });
    return { agentId, owner, clientId, scopes };
  };
}

export type GatewayAuthenticator = ReturnType<typeof createGatewayAuthenticator>;
