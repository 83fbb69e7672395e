import type { Logger } from 'pino';
import { WarrantError, invalidRequest, notFound } from '../../errors/index.ts';
import type { AuditLog, EventBus } from '../../events/index.ts';
import { providerSchema, redirectUriOf, type Provider } from '../../providers/index.ts';
import type { Store } from '../../store/index.ts';
import {
  discoverAuthorizationServer,
  discoverResource,
  registerClient,
  type AuthorizationServerMetadata,
  type GuardedFetch,
  type ProtectedResourceMetadata,
} from './discovery.ts';
import { gatewayTables } from './tables.ts';

// A registered remote MCP server is a provider: `mcp-<name>`, its endpoints from the server's
// authorization server metadata, `resource` its URL (RFC 8707, sent on authorize, code exchange and
// every refresh), so the owner's consent is an ordinary connect session and the upstream grant
// lives under the token lifecycle unchanged. The definition is rebuilt from the stored row on every
// instance (load()), the client secret opened from the vault.

export const SERVER_NAME = /^[a-z0-9][a-z0-9-]{0,39}$/;
export const providerIdOf = (name: string) => `mcp-${name}`;

export interface StoredServer {
  name: string;
  url: string;
  resource: ProtectedResourceMetadata;
  authorization_server: AuthorizationServerMetadata;
  client_id: string;
  token_endpoint_auth_method: string;
  /** How Warrant identified itself there. */
  client_source: 'pre_registered' | 'dynamic_registration';
  scopes: string[];
  created_at: number;
}

export interface RegisterInput {
  url: string;
  name: string;
  client_id?: string;
  client_secret?: string;
}

const secretKey = (name: string) => ({ scope: 'mcp_server', ref: name, field: 'client_secret' });

function definitionOf(s: StoredServer, clientSecret: string | undefined): Provider {
  const as = s.authorization_server;
  return providerSchema.parse({
    id: providerIdOf(s.name),
    name: `MCP server ${s.name}`,
    auth: 'oauth2',
    client_id: s.client_id,
    ...(clientSecret ? { client_secret: clientSecret } : {}),
    token_auth_method: clientSecret ? (s.token_endpoint_auth_method === 'client_secret_post' ? 'client_secret_post' : 'client_secret_basic') : 'none',
    environments: {
      production: {
        authorization_url: as.authorization_endpoint,
        token_url: as.token_endpoint,
        ...(as.revocation_endpoint ? { revocation_url: as.revocation_endpoint } : {}),
        ...(as.introspection_endpoint ? { introspection_url: as.introspection_endpoint } : {}),
        ...(as.authorization_response_iss_parameter_supported ? { issuer: as.issuer } : {}),
        api_base_url: s.url,
      },
    },
    ...(as.authorization_response_iss_parameter_supported ? { authorization_response_iss_parameter_supported: true } : {}),
    resource: s.resource.resource,
    // Its endpoints are the remote server's word, checked at registration only for their scheme:
    // every IdP call connects through the SSRF guard (a name may resolve elsewhere by then).
    endpoints_untrusted: true,
    // OpenID Connect servers grant a refresh token only for offline_access (OIDC Core §11).
    ...(as.scopes_supported?.includes('offline_access') ? { default_scopes: ['offline_access'] } : {}),
    refresh_token_rotation: true,
    // The proxy never reaches an MCP server: no scope opens a request through /v1/proxy.
    scopes: Object.fromEntries(s.scopes.map((scope) => [scope, []])),
  });
}

export interface ServersDeps {
  store: Store;
  catalog: Map<string, Provider>;
  guard: GuardedFetch;
  publicUrl: string;
  redirectPerProvider: boolean;
  audit: AuditLog;
  bus: EventBus;
  logger: Logger;
  now: () => number;
}

export function createServers(deps: ServersDeps) {
  const db = gatewayTables(deps.store.db);
  const known = new Map<string, StoredServer>();

  async function install(s: StoredServer): Promise<void> {
    const secret = await deps.store.vault.get(secretKey(s.name));
    deps.catalog.set(providerIdOf(s.name), definitionOf(s, secret));
    known.set(s.name, s);
  }

  async function read(name: string): Promise<StoredServer | undefined> {
    const row = await db.selectFrom('mcp_servers').selectAll().where('name', '=', name).executeTakeFirst();
    return row ? (JSON.parse(row.metadata) as StoredServer) : undefined;
  }

  const appendAudit = async (entry: Parameters<AuditLog['append']>[0]) => deps.bus.publish(await deps.audit.append(entry));

  return {
    /** Every stored server into the catalog (start-up). */
    async load(): Promise<void> {
      for (const row of await db.selectFrom('mcp_servers').selectAll().execute()) await install(JSON.parse(row.metadata) as StoredServer);
    },

    /** Whether this instance has the server (loaded at start, or registered or seen since). */
    has: (name: string): boolean => known.has(name),

    /** The server by name; re-read from the store when this instance has not seen it yet. */
    async get(name: string): Promise<StoredServer | undefined> {
      const have = known.get(name);
      if (have) return have;
      const s = await read(name);
      if (s) await install(s);
      return s;
    },

    async list(): Promise<StoredServer[]> {
      return (await db.selectFrom('mcp_servers').selectAll().orderBy('name').execute()).map((r) => JSON.parse(r.metadata) as StoredServer);
    },

    async register(input: RegisterInput, actor: string): Promise<StoredServer> {
      if (!SERVER_NAME.test(input.name)) throw invalidRequest('name', 'is 1 to 40 lower-case letters, digits and "-", starting with a letter or digit');
      if (input.name === 'warrant') throw invalidRequest('name', 'warrant is the name of Warrant’s own MCP server');
      if (!URL.canParse(input.url)) throw invalidRequest('url', 'must be an absolute URL');
      const url = new URL(input.url);
      if (url.search || url.hash) throw invalidRequest('url', 'has no query and no fragment');
      const problem = deps.guard.schemeProblem(url);
      if (problem) throw invalidRequest('url', problem);
      if (input.client_secret && !input.client_id) throw invalidRequest('client_id', 'is required with client_secret');
      if (deps.catalog.has(providerIdOf(input.name)) && !known.has(input.name)) throw new WarrantError('conflict', `the catalog already has a provider ${providerIdOf(input.name)}`);
      if (await read(input.name)) throw new WarrantError('conflict', `an MCP server ${input.name} is already registered; delete it first`);

      const serverUrl = url.href.replace(/\/+$/, '');
      const resource = await discoverResource(deps.guard, serverUrl);
      // MCP authorization: the first authorization server the resource names.
      const as = await discoverAuthorizationServer(deps.guard, resource.authorization_servers[0]!);
      const scopes = resource.scopes_supported ?? as.scopes_supported ?? [];
      let client: { client_id: string; client_secret?: string; token_endpoint_auth_method: string };
      let source: StoredServer['client_source'];
      if (input.client_id) {
        client = { client_id: input.client_id, ...(input.client_secret ? { client_secret: input.client_secret } : {}), token_endpoint_auth_method: input.client_secret ? 'client_secret_basic' : 'none' };
        source = 'pre_registered';
      } else {
        const redirectUri = redirectUriOf(deps.publicUrl, { id: providerIdOf(input.name) }, deps.redirectPerProvider);
        client = await registerClient(deps.guard, as, { redirectUri, clientName: 'Warrant', scope: scopes.join(' ') || undefined });
        source = 'dynamic_registration';
      }
      const stored: StoredServer = {
        name: input.name,
        url: serverUrl,
        resource,
        authorization_server: as,
        client_id: client.client_id,
        token_endpoint_auth_method: client.token_endpoint_auth_method,
        client_source: source,
        scopes,
        created_at: deps.now(),
      };
      // Built before anything is stored: a definition the schema refuses is an invalid registration.
      try {
        definitionOf(stored, client.client_secret);
      } catch (err) {
        throw invalidRequest('url', `the discovered metadata does not make a usable provider (${(err as Error).message.slice(0, 200)})`);
      }
      await deps.store.db.transaction().execute(async (trx) => {
        if (client.client_secret) await deps.store.vault.put(secretKey(stored.name), client.client_secret, trx);
        await gatewayTables(trx).insertInto('mcp_servers').values({ name: stored.name, url: stored.url, metadata: JSON.stringify(stored), created_at: stored.created_at }).execute();
      });
      await install(stored);
      await appendAudit({
        type: 'mcp.server_registered',
        actor,
        subject: `mcp_server:${stored.name}`,
        data: { url: stored.url, issuer: as.issuer, client_source: source, scopes },
      });
      return stored;
    },

    async remove(name: string, actor: string): Promise<void> {
      const s = await read(name);
      if (!s) throw notFound(`MCP server ${name}`);
      await deps.store.db.transaction().execute(async (trx) => {
        await gatewayTables(trx).deleteFrom('mcp_tool_allowlists').where('server', '=', name).execute();
        await gatewayTables(trx).deleteFrom('mcp_servers').where('name', '=', name).execute();
        await deps.store.vault.delete({ scope: 'mcp_server', ref: name }, trx);
      });
      known.delete(name);
      deps.catalog.delete(providerIdOf(name));
      await appendAudit({ type: 'mcp.server_deleted', actor, subject: `mcp_server:${name}`, data: { url: s.url } });
    },
  };
}

export type Servers = ReturnType<typeof createServers>;

/** What the admin API shows of a server: never a client secret. */
export const viewOfServer = (s: StoredServer, publicBase: string) => ({
  name: s.name,
  url: s.url,
  provider: providerIdOf(s.name),
  endpoint: `${publicBase}/mcp/${s.name}`,
  resource: s.resource.resource,
  issuer: s.authorization_server.issuer,
  client_id: s.client_id,
  client_source: s.client_source,
  scopes: s.scopes,
  created_at: new Date(s.created_at).toISOString(),
});
