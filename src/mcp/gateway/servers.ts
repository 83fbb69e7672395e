import type { Logger } from 'pino';
import { WarrantError, invalidRequest, notFound } from '../../errors/index.ts';
import type { AuditLog, EventBus } from '../../events/index.ts';
import { providerSchema, redirectUriOf, type Provider } from '../../providers/index.ts';
import type { Store } from '../../store/index.ts';
import { classify, type AssertionAlg, type TokenSet } from '../../oauth/index.ts';
import type { ClientResolver, ConnectionService } from '../../tokens/index.ts';
import {
  discoverAuthorizationServer,
  discoverLegacyAuthorizationServer,
  discoverResource,
  registerClient,
  tokenAuthMethodFor,
  type AuthorizationServerMetadata,
  type GuardedFetch,
  type ProtectedResourceMetadata,
} from './discovery.ts';
import { gatewayTables } from './tables.ts';
import { checkCredentialInput, checkMachineGrant, machineAuthFor, refusedRegistration, type ChosenAuth, type GrantType } from './machine.ts';

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
  /** How Warrant identified itself there (order tried: pre-registered, CIMD, RFC 7591). */
  client_source: ClientSource;
  /**
   * What the owner is asked to consent to (MCP scope selection): the `scope` of the server's 401,
   * else its RFC 9728 `scopes_supported`, else nothing (no `scope` parameter at all).
   */
  scopes: string[];
  /** How its auth was found: RFC 9728, or a 2025-03-26 server (AS metadata at its origin, or the default endpoints). Absent: rfc9728. */
  discovery?: 'rfc9728' | '2025-03-26' | '2025-03-26-default-endpoints';
  /**
   * `client_credentials`: a machine grant (SEP-1046) made at registration, no consent; the
   * connection `connection_id` of `owner`. Absent: authorization_code, each owner consents.
   */
  grant_type?: 'client_credentials';
  owner?: string;
  connection_id?: string;
  /** The `alg` of private_key_jwt assertions (the key itself is in the vault). */
  client_assertion_alg?: AssertionAlg;
  created_at: number;
}

export type ClientSource = 'pre_registered' | 'client_metadata_document' | 'dynamic_registration';

export interface RegisterInput {
  url: string;
  name: string;
  client_id?: string;
  client_secret?: string;
  /** `client_credentials`: a machine grant of `owner` (SEP-1046); default authorization_code. */
  grant_type?: GrantType;
  /** PKCS#8 PEM private key of a pre-registered private_key_jwt client (instead of client_secret). */
  private_key?: string;
  /** With client_credentials: whose connection the machine grant is. */
  owner?: string;
}

/** The client's secrets, sealed in the vault under scope `mcp_server`, never in the stored row. */
interface ClientSecrets {
  clientSecret?: string;
  privateKey?: string;
}

const secretKey = (name: string, field: 'client_secret' | 'private_key' = 'client_secret') => ({ scope: 'mcp_server', ref: name, field });

function tokenAuthMethodOf(s: StoredServer, secrets: ClientSecrets): Provider['token_auth_method'] {
  if (secrets.privateKey) return 'private_key_jwt';
  if (!secrets.clientSecret) return 'none';
  return s.token_endpoint_auth_method === 'client_secret_post' ? 'client_secret_post' : 'client_secret_basic';
}

function definitionOf(s: StoredServer, secrets: ClientSecrets): Provider {
  const as = s.authorization_server;
  const machine = s.grant_type === 'client_credentials';
  // The issuer is a private_key_jwt assertion's audience (RFC 7523 §3); otherwise it is set only
  // where the AS sends `iss` (RFC 9207), as before.
  const issuer = as.authorization_response_iss_parameter_supported || secrets.privateKey || machine;
  return providerSchema.parse({
    id: providerIdOf(s.name),
    name: `MCP server ${s.name}`,
    auth: machine ? 'client_credentials' : 'oauth2',
    client_id: s.client_id,
    ...(secrets.clientSecret ? { client_secret: secrets.clientSecret } : {}),
    ...(secrets.privateKey ? { client_private_key: secrets.privateKey, ...(s.client_assertion_alg ? { client_assertion_alg: s.client_assertion_alg } : {}) } : {}),
    token_auth_method: tokenAuthMethodOf(s, secrets),
    // A machine grant's credentials are the grant: invalid_client ends it (one alert), as a revocation.
    ...(machine ? { client_refusal: 'terminal' } : {}),
    // A 2025-03-26 server predates RFC 8707 in MCP: its AS is sent no resource (MCP clients never did).
    environments: {
      production: {
        ...(as.authorization_endpoint ? { authorization_url: as.authorization_endpoint } : {}),
        token_url: as.token_endpoint,
        ...(as.revocation_endpoint ? { revocation_url: as.revocation_endpoint } : {}),
        ...(as.introspection_endpoint ? { introspection_url: as.introspection_endpoint } : {}),
        ...(issuer ? { issuer: as.issuer } : {}),
        api_base_url: s.url,
      },
    },
    ...(as.authorization_response_iss_parameter_supported ? { authorization_response_iss_parameter_supported: true } : {}),
    ...(s.discovery === undefined || s.discovery === 'rfc9728' ? { resource: s.resource.resource } : {}),
    // Its endpoints are the remote server's word, checked at registration only for their scheme:
    // every IdP call connects through the SSRF guard (a name may resolve elsewhere by then).
    endpoints_untrusted: true,
    // The scopes of MCP scope selection, and offline_access where the AS lists it: OpenID Connect
    // servers grant a refresh token only for it (OIDC Core §11; SEP-2207), and one that does not
    // list it is never sent it.
    ...(defaultScopesOf(s).length ? { default_scopes: defaultScopesOf(s) } : {}),
    // Client credentials issue no refresh token (RFC 6749 §4.4.3): a new token is simply asked for.
    refresh_token_rotation: !machine,
    // The proxy never reaches an MCP server: no scope opens a request through /v1/proxy.
    scopes: Object.fromEntries(s.scopes.map((scope) => [scope, []])),
    // A step-up asks for what the server's WWW-Authenticate names, which its metadata may not list.
    free_scopes: true,
  });
}

const defaultScopesOf = (s: StoredServer) =>
  s.grant_type === 'client_credentials' ? s.scopes : [...new Set([...s.scopes, ...(s.authorization_server.scopes_supported?.includes('offline_access') ? ['offline_access'] : [])])];

export interface ServersDeps {
  store: Store;
  catalog: Map<string, Provider>;
  guard: GuardedFetch;
  publicUrl: string;
  /**
   * Warrant's client ID metadata document URL (WARRANT_CLIENT_METADATA_URL, else
   * `{public}/oauth/client-metadata.json`): its client_id where an AS takes CIMD and it is https.
   */
  clientMetadataUrl(): string;
  redirectPerProvider: boolean;
  /** OAuth clients of provider definitions (tokens/clients.ts): the machine grant's first token. */
  clients: ClientResolver;
  /** Writes the machine grant's connection with its first token. */
  connections: Pick<ConnectionService, 'saveGrant'>;
  audit: AuditLog;
  bus: EventBus;
  logger: Logger;
  now: () => number;
}

export function createServers(deps: ServersDeps) {
  const db = gatewayTables(deps.store.db);
  const known = new Map<string, StoredServer>();

  async function install(s: StoredServer): Promise<void> {
    const secrets: ClientSecrets = { clientSecret: await deps.store.vault.get(secretKey(s.name)), privateKey: await deps.store.vault.get(secretKey(s.name, 'private_key')) };
    deps.catalog.set(providerIdOf(s.name), definitionOf(s, secrets));
    known.set(s.name, s);
  }

  /** The server's row, secrets and catalog entry gone (its connections stay, as they are the owners'). */
  async function drop(name: string): Promise<void> {
    await deps.store.db.transaction().execute(async (trx) => {
      await gatewayTables(trx).deleteFrom('mcp_tool_allowlists').where('server', '=', name).execute();
      await gatewayTables(trx).deleteFrom('mcp_servers').where('name', '=', name).execute();
      await deps.store.vault.delete({ scope: 'mcp_server', ref: name }, trx);
    });
    known.delete(name);
    deps.catalog.delete(providerIdOf(name));
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
      const key = checkCredentialInput(input);
      const machine = input.grant_type === 'client_credentials';
      if (machine && (await deps.store.owners.get(input.owner!))?.status === 'offboarded') throw invalidRequest('owner', 'is offboarded');
      if (deps.catalog.has(providerIdOf(input.name)) && !known.has(input.name)) throw new WarrantError('conflict', `the catalog already has a provider ${providerIdOf(input.name)}`);
      if (await read(input.name)) throw new WarrantError('conflict', `an MCP server ${input.name} is already registered; delete it first`);

      const serverUrl = url.href.replace(/\/+$/, '');
      const found = await discoverResource(deps.guard, serverUrl);
      let as: AuthorizationServerMetadata;
      let discovery: NonNullable<StoredServer['discovery']> = 'rfc9728';
      const needs = machine ? 'machine' : 'code';
      if (found.resource) {
        // MCP authorization: the first authorization server the resource names.
        as = await discoverAuthorizationServer(deps.guard, found.resource.authorization_servers[0]!, needs);
      } else {
        const legacy = await discoverLegacyAuthorizationServer(deps.guard, serverUrl, needs);
        as = legacy.as;
        discovery = legacy.fallback ? '2025-03-26-default-endpoints' : '2025-03-26';
      }
      const resource: ProtectedResourceMetadata = found.resource ?? { resource: serverUrl, authorization_servers: [as.issuer] };
      // MCP scope selection (2025-11-25): the challenge's scope, else scopes_supported, else none.
      const scopes = found.challengeScopes ?? resource.scopes_supported ?? [];
      let client: { client_id: string; client_secret?: string; token_endpoint_auth_method: string };
      let source: StoredServer['client_source'];
      let chosen: ChosenAuth | undefined;
      const metadataUrl = deps.clientMetadataUrl();
      const publicOk = !as.token_endpoint_auth_methods_supported || as.token_endpoint_auth_methods_supported.includes('none');
      if (machine) checkMachineGrant(as);
      if (machine || key) {
        // SEP-1046 (and any pre-registered private_key_jwt client): the method must be one the server lists.
        chosen = machineAuthFor(as, key);
        client = { client_id: input.client_id!, ...(input.client_secret ? { client_secret: input.client_secret } : {}), token_endpoint_auth_method: chosen.method };
        source = 'pre_registered';
      } else if (input.client_id) {
        client = { client_id: input.client_id, ...(input.client_secret ? { client_secret: input.client_secret } : {}), token_endpoint_auth_method: tokenAuthMethodFor(as, !!input.client_secret) };
        source = 'pre_registered';
      } else if (as.client_id_metadata_document_supported && metadataUrl.startsWith('https://') && publicOk) {
        // A Client ID Metadata Document: Warrant's https URL is its client_id, nothing to register.
        client = { client_id: metadataUrl, token_endpoint_auth_method: 'none' };
        source = 'client_metadata_document';
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
        discovery,
        ...(machine ? { grant_type: 'client_credentials' as const, owner: input.owner! } : {}),
        ...(chosen?.alg ? { client_assertion_alg: chosen.alg } : {}),
        created_at: deps.now(),
      };
      const secrets: ClientSecrets = { clientSecret: client.client_secret, privateKey: input.private_key };
      // Built before anything is stored: a definition the schema refuses is an invalid registration.
      let definition: Provider;
      try {
        definition = definitionOf(stored, secrets);
      } catch (err) {
        throw invalidRequest('url', `the discovered metadata does not make a usable provider (${(err as Error).message.slice(0, 200)})`);
      }
      // A machine grant's first token, before anything is stored: credentials the server refuses
      // make no registration (refusedRegistration names the field, never the secret).
      let first: TokenSet | undefined;
      if (machine) {
        try {
          first = await deps.clients(definition, 'production', {}).clientCredentials(scopes);
        } catch (err) {
          throw refusedRegistration(classify(err, 'client credentials'), input, scopes);
        }
      }
      await deps.store.db.transaction().execute(async (trx) => {
        if (secrets.clientSecret) await deps.store.vault.put(secretKey(stored.name), secrets.clientSecret, trx);
        if (secrets.privateKey) await deps.store.vault.put(secretKey(stored.name, 'private_key'), secrets.privateKey, trx);
        await gatewayTables(trx).insertInto('mcp_servers').values({ name: stored.name, url: stored.url, metadata: JSON.stringify(stored), created_at: stored.created_at }).execute();
      });
      await install(stored);
      if (first) {
        // The grant is the owner's connection under the token lifecycle: asked for again ahead of expiry.
        try {
          const row = await deps.connections.saveGrant({
            provider: deps.catalog.get(providerIdOf(stored.name))!,
            environment: 'production',
            owner: stored.owner!,
            tokens: first,
            requestedScopes: scopes,
            params: {},
            actor,
            event: 'connection.created',
          });
          stored.connection_id = row.id;
          await db.updateTable('mcp_servers').set({ metadata: JSON.stringify(stored) }).where('name', '=', stored.name).execute();
        } catch (err) {
          await drop(stored.name).catch(() => undefined);
          throw err;
        }
      }
      await appendAudit({
        type: 'mcp.server_registered',
        actor,
        subject: `mcp_server:${stored.name}`,
        data: {
          url: stored.url,
          issuer: as.issuer,
          client_source: source,
          scopes,
          discovery,
          ...(machine ? { grant_type: 'client_credentials', owner: stored.owner, connection: stored.connection_id, token_endpoint_auth_method: client.token_endpoint_auth_method } : {}),
        },
      });
      return stored;
    },

    async remove(name: string, actor: string): Promise<void> {
      const s = await read(name);
      if (!s) throw notFound(`MCP server ${name}`);
      await drop(name);
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
  grant_type: s.grant_type ?? ('authorization_code' as const),
  token_endpoint_auth_method: s.token_endpoint_auth_method,
  ...(s.owner ? { owner: s.owner } : {}),
  ...(s.connection_id ? { connection: s.connection_id } : {}),
  created_at: new Date(s.created_at).toISOString(),
});
