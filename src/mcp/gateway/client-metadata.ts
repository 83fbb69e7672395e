import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { redirectUriOf } from '../../providers/index.ts';
import { providerIdOf, type StoredServer } from './servers.ts';

// Warrant's own Client ID Metadata Document (draft-ietf-oauth-client-id-metadata-document, MCP
// 2025-11-25 "Client ID Metadata Documents"): where a remote MCP server's authorization server
// advertises `client_id_metadata_document_supported`, Warrant's client_id there is the https URL of
// this document, and that server fetches it instead of Warrant registering (RFC 7591). Public: it
// holds no secret, only what any authorization request already shows (name, redirect URIs).

export const CLIENT_METADATA_PATH = '/oauth/client-metadata.json';

const document = z.object({
  client_id: z.string(),
  client_name: z.string(),
  client_uri: z.string(),
  redirect_uris: z.array(z.string()),
  grant_types: z.array(z.string()),
  response_types: z.array(z.string()),
  token_endpoint_auth_method: z.literal('none'),
  application_type: z.literal('web'),
});

export interface ClientMetadataDeps {
  /** Where the document is published (its client_id): WARRANT_CLIENT_METADATA_URL or `{public}/oauth/client-metadata.json`. */
  url(): string;
  base(): string;
  publicUrl: string;
  redirectPerProvider: boolean;
  servers(): Promise<StoredServer[]>;
}

/** The document: redirect URIs are the connect callback(s) of the servers that know Warrant by it. */
export async function clientMetadataDocument(deps: ClientMetadataDeps): Promise<z.output<typeof document>> {
  const shared = redirectUriOf(deps.publicUrl, { id: '' }, false);
  const perServer = deps.redirectPerProvider
    ? (await deps.servers()).filter((s) => s.client_source === 'client_metadata_document').map((s) => redirectUriOf(deps.publicUrl, { id: providerIdOf(s.name) }, true))
    : [];
  return {
    client_id: deps.url(),
    client_name: 'Warrant',
    client_uri: deps.base(),
    // The redirect URI an authorization request names must be one of these, exactly.
    redirect_uris: [...new Set(deps.redirectPerProvider ? perServer : [shared])],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    application_type: 'web',
  };
}

/** GET /oauth/client-metadata.json: open, JSON, cacheable for a few minutes. */
export function clientMetadataRoute(deps: ClientMetadataDeps) {
  return async (app: FastifyInstance) => {
    const schema = {
      tags: ['mcp'],
      summary: "Warrant's client ID metadata document",
      description:
        'Who Warrant is as an OAuth client of remote MCP servers\' authorization servers that take client ID metadata documents: its `client_id` is this URL, ' +
        'with its redirect URIs and name. Open, cacheable for a few minutes.',
      response: { 200: document },
    };
    app.withTypeProvider<ZodTypeProvider>().get(CLIENT_METADATA_PATH, { schema }, async (_req, reply) => {
      reply.header('cache-control', 'public, max-age=300');
      return clientMetadataDocument(deps);
    });
  };
}
