import { randomBytes } from 'node:crypto';
import type Provider from 'oidc-provider';
import { WarrantError, invalidRequest } from '../errors/index.ts';
import type { Store } from '../store/index.ts';
import type { ClientAgents } from './agents.ts';

// Headless agents (SEP-1046): a client that authenticates with its own key (`private_key_jwt`,
// RFC 7523 §2.2) and gets `client_credentials` tokens, with no browser and no consent screen. Its
// owner is set by the admin who registers it (`POST /v1/authz/clients {owner, jwks | jwks_uri}`):
// dynamic registration cannot create one, since a client naming its own owner would be a client
// granting itself an owner's trust. Registering makes it an agent of that owner at once; revoking
// the agent or offboarding the owner makes the client unknown to the token endpoint.

/** The client metadata member naming the owner (extraClientMetadata; refused at /oauth2/register). */
export const OWNER_METADATA = 'warrant_owner';

export interface HeadlessClientInput {
  owner: string;
  client_name: string;
  jwks?: { keys: Record<string, unknown>[] };
  jwks_uri?: string;
  /** Scopes the client may ask for (space-separated); the resource's own scopes bound them further. */
  scope?: string;
}

export function createHeadlessClients(deps: {
  provider: () => Provider | undefined;
  clientAgents: Pick<ClientAgents, 'ensure'>;
  store: Pick<Store, 'owners'>;
  now: () => number;
}) {
  return {
    async register(input: HeadlessClientInput): Promise<{ client_id: string; owner: string; agent_id: string; client_name: string; grant_types: string[]; token_endpoint_auth_method: string; scope?: string }> {
      const provider = deps.provider();
      if (!provider) throw new WarrantError('unavailable', 'the authorization server is starting', { retry_after: 1 });
      if (!input.jwks === !input.jwks_uri) throw invalidRequest('jwks', 'give exactly one of jwks and jwks_uri: the public keys the client signs its assertions with');
      if (input.jwks && input.jwks.keys.some((k) => 'd' in k || 'p' in k || 'k' in k)) throw invalidRequest('jwks', 'must hold public keys only');
      if (input.jwks_uri && !input.jwks_uri.startsWith('https://')) throw invalidRequest('jwks_uri', 'must be an https URL');
      const owner = await deps.store.owners.get(input.owner);
      if (owner?.status === 'offboarded') throw new WarrantError('conflict', `owner ${input.owner} is offboarded`, { owner: input.owner });
      await deps.store.owners.ensure(input.owner, deps.now());
      const clientId = `wcl_${randomBytes(16).toString('base64url')}`;
      const metadata: Record<string, unknown> = {
        client_id: clientId,
        client_id_issued_at: Math.floor(deps.now() / 1000),
        client_name: input.client_name,
        application_type: 'web',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'private_key_jwt',
        ...(input.jwks ? { jwks: input.jwks } : { jwks_uri: input.jwks_uri }),
        ...(input.scope ? { scope: input.scope } : {}),
        [OWNER_METADATA]: input.owner,
      };
      try {
        await provider.Client.validate(metadata as never);
      } catch (err) {
        const e = err as { error?: string; error_description?: string; message: string };
        throw invalidRequest(e.error_description?.includes('jwks') ? 'jwks' : 'client', e.error_description ?? e.message);
      }
      // The agent first: a client without its agent is unknown to the token endpoint anyway.
      const agentId = await deps.clientAgents.ensure({ clientId, name: input.client_name }, input.owner);
      await (provider.Client as unknown as { adapter: { upsert(id: string, payload: unknown): Promise<void> } }).adapter.upsert(clientId, metadata);
      return {
        client_id: clientId,
        owner: input.owner,
        agent_id: agentId,
        client_name: input.client_name,
        grant_types: ['client_credentials'],
        token_endpoint_auth_method: 'private_key_jwt',
        ...(input.scope ? { scope: input.scope } : {}),
      };
    },
  };
}

export type HeadlessClients = ReturnType<typeof createHeadlessClients>;
