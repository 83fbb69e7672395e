import type { ProblemCode } from '../errors/index.ts';
import { problemResponses, type OpenApiResponse } from './openapi-problems.ts';

// Documentation-only path items for what is served outside Fastify's router, on the raw
// node:http request (app.ts `rawRoutes`): the proxy, Warrant's authorization server
// (oidc-provider, src/authz) and the MCP endpoints; and HTML surfaces whose routes are hidden on
// purpose, each documented as one entry: /docs (@fastify/swagger-ui) and the dashboard, /ui. The paths are the contract (docs/proxy.md, docs/authz.md, docs/mcp.md);
// test/http/openapi.test.ts checks each one is really served.

type Operation = Record<string, unknown>;
type PathItem = Record<string, Operation | unknown[]>;

const oauthError = (description: string): OpenApiResponse => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/OAuthError' } } },
});

const json = (description: string, example?: unknown, schema: Record<string, unknown> = { type: 'object' }): OpenApiResponse => ({
  description,
  content: { 'application/json': { schema, ...(example === undefined ? {} : { example }) } },
});

const html = (description: string): OpenApiResponse => ({ description, content: { 'text/html': { schema: { type: 'string' } } } });

const form = (properties: Record<string, unknown>, required: string[]) => ({
  required: true,
  content: { 'application/x-www-form-urlencoded': { schema: { type: 'object', properties, required } } },
});

const PROXY_PROBLEMS: ProblemCode[] = [
  'invalid_request',
  'agent_unauthenticated',
  'upstream_auth_failed',
  'agent_suspended',
  'policy_denied',
  'scope_insufficient',
  'payload_too_large',
  'conflict',
  'reauth_required',
  'rate_limited',
  'upstream_rate_limited',
  'upstream_unavailable',
  'refresh_unavailable',
  'unavailable',
  'internal_error',
];

function proxyOperation(method: string): Operation {
  const hasBody = !['get', 'head', 'options', 'delete'].includes(method);
  return {
    tags: ['proxy', 'agent'],
    operationId: `proxy${method[0]!.toUpperCase()}${method.slice(1)}`,
    summary: `Call the upstream API through Warrant (${method.toUpperCase()})`,
    description:
      "Forwards the call to the connection's API base URL plus `path` (and the query), with the connection's access token injected. " +
      'Before the upstream is contacted: the body limit, the agent key, the agent\'s rate and concurrency limits, a reserved audit slot, ' +
      'a grant on the connection, a path that stays inside the API base (judged after repeated percent-decoding), and a scope rule of the grant that ' +
      'allows this method, path and query. The agent\'s `Authorization`, cookies, hop-by-hop and `Warrant-*` headers never reach the upstream.\n\n' +
      'The upstream answer comes back as it is (streamed), except auth failures: a 401 (or a provider\'s body-level auth failure) is refreshed and retried once ' +
      '(`upstream_auth_failed` if the fresh token is refused too, `reauth_required` if the IdP refuses the refresh); a 403 for a missing scope becomes ' +
      '`scope_insufficient`; 429/502/503/504 and resets are retried with backoff for idempotent methods or an `Idempotency-Key`.\n\n' +
      '**Who may call it:** an agent, with its own API key (`wrt_…`) as `Authorization: Bearer`, holding a grant on the connection.\n\n' +
      'Served on the raw HTTP server ahead of the router (no JSON parsing); every answer carries `Warrant-Request-Id`, `Warrant-Retries` and `Warrant-Token-Refreshed`.',
    security: [{ agent: [] }],
    parameters: [
      { name: 'connection', in: 'path', required: true, schema: { type: 'string' }, description: 'The connection id (`con_…`)', example: 'con_7hq2' },
      {
        name: 'path',
        in: 'path',
        required: true,
        schema: { type: 'string' },
        description: 'The upstream path below the API base, slashes included (this one parameter is the rest of the URL path)',
        example: 'items/42',
      },
      { name: 'Warrant-Api-Host', in: 'header', required: false, schema: { type: 'string' }, description: "Which of the environment's API hosts to call (by its key), when the provider has several" },
      { name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string' }, description: 'Makes a non-idempotent call (POST) eligible for retries; passed upstream' },
    ],
    ...(hasBody ? { requestBody: { required: false, description: 'Sent upstream as it is (streamed; bodies up to 1 MiB are buffered so a retry can replay them)', content: { '*/*': { schema: {} } } } } : {}),
    responses: {
      200: {
        description: "The upstream's answer, status, headers and body as they are (any status that is not an auth failure; `Set-Cookie` dropped, redirects not followed)",
        headers: {
          'Warrant-Request-Id': { schema: { type: 'string' }, description: "The request id in Warrant's log and audit entry" },
          'Warrant-Retries': { schema: { type: 'integer' }, description: 'How many times Warrant retried the upstream call' },
          'Warrant-Token-Refreshed': { schema: { type: 'boolean' }, description: 'Whether the token was refreshed during this call' },
        },
        content: { '*/*': { schema: {}, ...(method === 'get' ? { example: { items: [{ id: 42, name: 'first item' }] } } : {}) } },
      },
      ...problemResponses(PROXY_PROBLEMS),
    },
  };
}

const proxyPath = (): PathItem =>
  Object.fromEntries(['get', 'post', 'put', 'patch', 'delete', 'head', 'options'].map((m) => [m, proxyOperation(m)]));

/** Warrant's authorization server: oidc-provider's endpoints, as docs/authz.md lists them. */
function authorizationServer(): Record<string, PathItem> {
  const tags = ['authorization-server'];
  const metadata = (rfc: string): Operation => ({
    tags,
    summary: `Authorization server metadata (${rfc})`,
    description:
      "The authorization server's metadata document: issuer, endpoints, grant types, scopes, PKCE methods (`S256` only), " +
      '`client_id_metadata_document_supported`. The same document is served at `/.well-known/oauth-authorization-server` (RFC 8414) and ' +
      '`/.well-known/openid-configuration` (OpenID Connect Discovery 1.0). Open: it holds no secret.',
    responses: {
      200: json('The metadata document', {
        issuer: 'https://warrant.example.com',
        authorization_endpoint: 'https://warrant.example.com/oauth2/authorize',
        token_endpoint: 'https://warrant.example.com/oauth2/token',
        registration_endpoint: 'https://warrant.example.com/oauth2/register',
        revocation_endpoint: 'https://warrant.example.com/oauth2/revoke',
        introspection_endpoint: 'https://warrant.example.com/oauth2/introspect',
        jwks_uri: 'https://warrant.example.com/oauth2/jwks',
        code_challenge_methods_supported: ['S256'],
        grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code', 'urn:ietf:params:oauth:grant-type:token-exchange'],
      }),
      500: oauthError('`server_error`'),
    },
  });
  const seeMetadata = 'Its address and capabilities are in the metadata document, `/.well-known/oauth-authorization-server`.';
  return {
    '/.well-known/oauth-authorization-server': { get: metadata('RFC 8414') },
    '/.well-known/openid-configuration': { get: metadata('OpenID Connect Discovery') },
    '/oauth2/authorize': {
      get: {
        tags,
        summary: 'Authorization endpoint (OAuth 2.1, PKCE S256)',
        description:
          'Starts an authorization code grant for an agent or MCP client (RFC 6749 §4.1 as profiled by OAuth 2.1): `code_challenge` with `S256` is required, ' +
          'and so is a resource indicator (RFC 8707): `{public}/v1` or `{public}/mcp/{name}`. The owner signs in with a login code and consents on ' +
          "Warrant's pages; the answer is a redirect to the client's exact `redirect_uri` with `code`, `state` and `iss` (RFC 9207), errors included. " +
          seeMetadata,
        parameters: [
          ...['response_type', 'client_id', 'redirect_uri', 'code_challenge', 'resource'].map((name) => ({ name, in: 'query', required: true, schema: { type: 'string' } })),
          { name: 'code_challenge_method', in: 'query', required: true, schema: { type: 'string', enum: ['S256'] } },
          ...['scope', 'state'].map((name) => ({ name, in: 'query', required: false, schema: { type: 'string' } })),
        ],
        responses: {
          303: { description: 'To the login and consent pages, or back to the client with `code` (or `error`), `state` and `iss`' },
          400: html('A request that cannot be sent back to the client (unknown client, redirect URI not registered): an HTML error page'),
        },
      },
    },
    '/oauth2/token': {
      post: {
        tags,
        summary: 'Token endpoint',
        description:
          'Exchanges an authorization code (with its PKCE `code_verifier`), a refresh token (rotated on every use, with a grace until the successor is used), ' +
          'client credentials (headless agents, `private_key_jwt`), a device code (RFC 8628), or a subject token (token exchange, RFC 8693) for an access token: ' +
          'an RFC 9068 JWT for exactly one resource, valid 10 minutes. Client authentication per the client\'s `token_endpoint_auth_method`. ' +
          seeMetadata,
        requestBody: form(
          { grant_type: { type: 'string' }, code: { type: 'string' }, code_verifier: { type: 'string' }, redirect_uri: { type: 'string' }, refresh_token: { type: 'string' }, resource: { type: 'string' }, scope: { type: 'string' }, client_id: { type: 'string' } },
          ['grant_type'],
        ),
        responses: {
          200: json('The token response (RFC 6749 §5.1)', { access_token: 'eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9…', token_type: 'Bearer', expires_in: 600, scope: 'mcp', refresh_token: '…' }),
          400: oauthError('`invalid_request`, `invalid_grant`, `invalid_target`, `unsupported_grant_type` (RFC 6749 §5.2)'),
          401: oauthError('`invalid_client`: client authentication failed'),
        },
      },
    },
    '/oauth2/register': {
      post: {
        tags,
        summary: 'Dynamic client registration (RFC 7591)',
        description:
          'Registers a client, open (no initial access token): `application_type` and `redirect_uris` are required; a web client\'s redirect URIs are `https` ' +
          '(plain `http` only on a loopback host). Every client becomes an agent of the owner who consents. A client may instead use an `https` client id ' +
          'naming its metadata document (CIMD). ' +
          seeMetadata,
        requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', required: ['redirect_uris'], properties: { redirect_uris: { type: 'array', items: { type: 'string' } }, application_type: { type: 'string', enum: ['web', 'native'] }, client_name: { type: 'string' }, grant_types: { type: 'array', items: { type: 'string' } }, token_endpoint_auth_method: { type: 'string' } } }, example: { application_type: 'native', redirect_uris: ['http://127.0.0.1:33418/callback'], client_name: 'My MCP client', token_endpoint_auth_method: 'none' } } } },
        responses: {
          201: json('The registered client (RFC 7591 §3.2.1); a confidential client\'s `client_secret` is in this answer only', { client_id: 'wcl_Yb2…', redirect_uris: ['http://127.0.0.1:33418/callback'], token_endpoint_auth_method: 'none' }),
          400: oauthError('`invalid_client_metadata` or `invalid_redirect_uri`'),
        },
      },
    },
    '/oauth2/revoke': {
      post: {
        tags,
        summary: 'Token revocation (RFC 7009)',
        description: 'Revokes an access or refresh token the calling client holds; answers 200 whether or not the token was known. ' + seeMetadata,
        requestBody: form({ token: { type: 'string' }, token_type_hint: { type: 'string', enum: ['access_token', 'refresh_token'] } }, ['token']),
        responses: { 200: { description: 'Revoked, or not a token of this client (RFC 7009 §2.2)' }, 400: oauthError('`invalid_request`'), 401: oauthError('`invalid_client`') },
      },
    },
    '/oauth2/introspect': {
      post: {
        tags,
        summary: 'Token introspection (RFC 7662)',
        description: 'Tells an authenticated client whether a token is active, with its claims; `active: false` for anything else. ' + seeMetadata,
        requestBody: form({ token: { type: 'string' }, token_type_hint: { type: 'string' } }, ['token']),
        responses: {
          200: json('The introspection response (RFC 7662 §2.2)', { active: true, client_id: 'wcl_Yb2…', sub: 'alice@example.com', aud: 'https://warrant.example.com/mcp/github', scope: 'mcp', exp: 1767225600 }),
          400: oauthError('`invalid_request`'),
          401: oauthError('`invalid_client`: introspection needs client authentication'),
        },
      },
    },
    '/oauth2/jwks': {
      get: {
        tags,
        summary: "The authorization server's public signing keys (JWKS)",
        description: 'Verify access tokens (RFC 9068 JWTs, RS256) with these keys. Open. ' + seeMetadata,
        responses: { 200: { description: 'A JSON Web Key Set (RFC 7517 §5)', content: { 'application/jwk-set+json': { schema: { type: 'object' } } } }, 500: oauthError('`server_error`') },
      },
    },
    '/oauth2/device/auth': {
      post: {
        tags,
        summary: 'Device authorization (RFC 8628)',
        description: 'Starts a device grant: a `device_code` for the client to poll the token endpoint with, a `user_code` and `verification_uri` for the owner. ' + seeMetadata,
        requestBody: form({ client_id: { type: 'string' }, scope: { type: 'string' }, resource: { type: 'string' } }, ['client_id']),
        responses: { 200: json('The device authorization response (RFC 8628 §3.2)'), 400: oauthError('`invalid_request`, `invalid_target`'), 401: oauthError('`invalid_client`') },
      },
    },
    '/oauth2/device': {
      get: {
        tags,
        summary: 'The page where an owner enters a device flow\'s user code (HTML)',
        description: 'The `verification_uri` of the device grant: the owner types the user code, signs in and consents.',
        responses: { 200: html('The user code page'), 400: html('An error page') },
      },
    },
  };
}

const MCP_PROBLEMS: ProblemCode[] = ['invalid_request', 'agent_unauthenticated', 'agent_suspended', 'policy_denied', 'not_found', 'payload_too_large', 'rate_limited', 'unavailable', 'internal_error'];

function mcpEndpoint(which: 'warrant' | 'gateway'): PathItem {
  const own = which === 'warrant';
  const intro = own
    ? "Warrant's own MCP server (Streamable HTTP): tools `list_connections`, `connection_status`, `provider_detail` (scope `warrant:read`), `call_api` (`warrant:call`) and `request_access` (`warrant:request`). " +
      '**Who may call it:** an agent, with its API key (`wrt_…`, all three scopes) or an access token of Warrant\'s authorization server for the resource `{public}/mcp/warrant` (the scopes consented).'
    : 'The MCP gateway in front of the remote MCP server registered as `{server}` (Streamable HTTP): Warrant is the MCP client of that server with the owner\'s connection, ' +
      'refreshes its short-lived tokens and re-connects on 401; the caller\'s token never goes upstream. ' +
      "**Who may call it:** an MCP client with an access token of Warrant's authorization server whose `aud` is exactly `{public}/mcp/{server}`, with the scope `mcp` (agent API keys are not accepted here).";
  const auth =
    ' Without a valid credential: 401 `agent_unauthenticated` with `WWW-Authenticate: Bearer resource_metadata="…/.well-known/oauth-protected-resource/mcp/…"` (RFC 9728); ' +
    'a token without the scope a tool needs: 403 with `error="insufficient_scope"`. Sessions (`Mcp-Session-Id`) are bound to the caller; a request without a session ' +
    'that is not `initialize` stands alone (stateless).';
  const security = own ? [{ agent: [] }, { warrantOAuth: ['warrant:read'] }] : [{ warrantOAuth: ['mcp'] }];
  const params = own ? [] : [{ name: 'server', in: 'path', required: true, schema: { type: 'string', pattern: '^[a-z0-9-]{1,40}$' }, description: 'The name the server was registered under (`POST /v1/mcp-servers`)', example: 'github' }];
  const session = { name: 'Mcp-Session-Id', in: 'header', required: false, schema: { type: 'string' } };
  const id = own ? 'McpWarrant' : 'McpGateway';
  const errors = problemResponses(MCP_PROBLEMS);
  return {
    post: {
      tags: ['mcp'],
      operationId: `post${id}`,
      summary: own ? "Send a JSON-RPC message to Warrant's MCP server" : 'Send a JSON-RPC message to a remote MCP server through the gateway',
      description: intro + auth,
      security,
      parameters: [...params, session],
      requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', description: 'A JSON-RPC 2.0 request or notification (MCP)' }, example: { jsonrpc: '2.0', id: 1, method: 'tools/list' } } } },
      responses: {
        200: { description: 'The JSON-RPC answer', content: { 'application/json': { schema: { type: 'object' } } } },
        202: { description: 'A notification or response accepted' },
        ...errors,
      },
    },
    get: {
      tags: ['mcp'],
      operationId: `get${id}`,
      summary: 'Open the server-to-client event stream of a session',
      description: 'With `Mcp-Session-Id`: the session\'s stream of server messages (Server-Sent Events). ' + intro,
      security,
      parameters: [...params, { ...session, required: true }],
      responses: { 200: { description: 'Server-Sent Events', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errors },
    },
    delete: {
      tags: ['mcp'],
      operationId: `delete${id}`,
      summary: 'End a session',
      description: 'Closes the session named by `Mcp-Session-Id`. ' + intro,
      security,
      parameters: [...params, { ...session, required: true }],
      responses: { 200: { description: 'The session is closed' }, ...errors },
    },
  };
}

/** Every documentation-only path item, by OpenAPI path. */
export function rawPathItems(): Record<string, PathItem> {
  return {
    '/v1/proxy/{connection}/{path}': proxyPath(),
    ...authorizationServer(),
    '/mcp/warrant': mcpEndpoint('warrant'),
    '/mcp/{server}': mcpEndpoint('gateway'),
    '/': {
      get: {
        tags: ['dashboard'],
        summary: 'To the dashboard',
        description: 'Redirects to `/ui`.',
        responses: { 302: { description: 'To `/ui`' } },
      },
    },
    '/ui': {
      get: {
        tags: ['dashboard'],
        summary: 'The admin dashboard (HTML)',
        description:
          'Server-rendered HTML pages under `/ui/…`: connections, agents, the audit timeline, webhooks and their deliveries, providers. ' +
          'Sign in at `/ui/login` with the admin token or an admin key; what a page lets you do follows the key\'s role, through this same API. ' +
          'Forms post to `/ui/…` with a per-session token; the pages are for people, not for programs (use the API).',
        responses: {
          200: html('A dashboard page'),
          303: { description: 'To `/ui/login` without a session' },
          403: html("Refused: a form from another origin or without the session's token, or an action the key's role does not allow (the API's problem, shown)"),
          503: html("Warrant cannot serve the page right now (the API's problem, shown)"),
        },
      },
    },
    '/docs': {
      get: {
        tags: ['reference'],
        summary: 'This reference, rendered (HTML)',
        description: 'Swagger UI served by Warrant itself, from its own assets (no CDN), under a Content-Security-Policy that loads nothing from elsewhere. Open.',
        responses: { 200: html('The reference page') },
      },
    },
  };
}
