import type { FastifyInstance } from 'fastify';
import swagger, { type FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import type { ProblemCode } from '../errors/index.ts';
import { oauthErrorSchema, problemResponses, problemSchema } from './openapi-problems.ts';
import { requiredRole } from '../admin/index.ts';
import { rawPathItems } from './openapi-raw.ts';
import type { OpenApiResponse } from './openapi-problems.ts';

// The OpenAPI 3.1 document at /openapi.json, built from the routes' zod schemas. A route states
// what only it knows (summary, description, the problem codes of its own failures, examples as
// zod `.meta({ examples })`); this module adds what follows from its schema: the problems its
// credential and its input imply, who may call it, and one response per problem status, each
// pointing at the shared Problem schema. Routes served outside Fastify's router (the proxy, the
// authorization server, the MCP endpoints) are documented in openapi-raw.ts.

declare module 'fastify' {
  interface FastifySchema {
    /**
     * Problem codes the route answers beyond those its security and input imply (OpenAPI only);
     * `false`: its errors are in another format (SCIM's), documented in `otherResponses`.
     */
    problems?: readonly ProblemCode[] | false;
    /** Answers that are not a zod `response` schema (an HTML page, a redirect, another format), by status (OpenAPI only). */
    otherResponses?: Record<string, OpenApiResponse>;
  }
}

interface RouteSchema {
  security?: readonly Record<string, readonly string[]>[];
  body?: unknown;
  querystring?: unknown;
  params?: unknown;
  problems?: readonly ProblemCode[] | false;
}

const schemesOf = (schema: RouteSchema) => new Set((schema.security ?? []).flatMap((s) => Object.keys(s)));

/** The problem codes a route may answer: its own, and those its credential and its input imply. */
export function problemsOf(schema: RouteSchema, method: string, url: string): ProblemCode[] {
  if (schema.problems === false) return [];
  const codes = new Set<ProblemCode>(schema.problems ?? []);
  const schemes = schemesOf(schema);
  if (schemes.has('admin')) {
    // The admin guard: a wrong credential (rate limited past a budget), a role below the route's.
    for (const c of ['admin_unauthenticated', 'rate_limited', 'unavailable'] as const) codes.add(c);
    if (requiredRole(method, url) !== 'read') codes.add('admin_forbidden');
  }
  if (schemes.has('agent')) for (const c of ['agent_unauthenticated', 'agent_suspended', 'unavailable'] as const) codes.add(c);
  if (schema.body || schema.querystring || schema.params) codes.add('invalid_request');
  if (schema.body) codes.add('payload_too_large');
  codes.add('internal_error');
  return [...codes];
}

/** Who may call a route, as a sentence for its description. */
export function callerOf(schema: RouteSchema, method: string, url: string): string | undefined {
  const schemes = schemesOf(schema);
  if (schemes.has('admin')) {
    const role = requiredRole(method, url);
    const roles = { read: '`read`, `operate` or `admin`', operate: '`operate` or `admin`', admin: '`admin`' }[role];
    return `**Who may call it:** the admin token, or an admin key whose role is ${roles}.`;
  }
  if (schemes.has('agent')) return "**Who may call it:** an agent, with its own API key (`wrt_…`) as `Authorization: Bearer`.";
  return undefined;
}

type TransformInput = Parameters<typeof jsonSchemaTransform>[0];

const reasons: Record<string, string> = { 200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content' };

/** A zod response schema's answer is described by the schema's own description, else by its status. */
function describeOwn(own: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [status, s] of Object.entries(own)) {
    const schema = s as Record<string, unknown>;
    out[status] = schema && typeof schema === 'object' && !schema.content && !schema.description && reasons[status] ? { ...schema, 'x-response-description': reasons[status] } : schema;
  }
  return out;
}

/** Problem answers beside a route's own at the same status (an HTML error page and a problem): both media types. */
function mergeResponses(own: Record<string, unknown>, problems: Record<string, OpenApiResponse>): Record<string, unknown> {
  const out = { ...own };
  for (const [status, problem] of Object.entries(problems)) {
    const mine = out[status] as OpenApiResponse | undefined;
    out[status] = mine?.content ? { ...mine, description: `${mine.description}; ${problem.description}`, content: { ...mine.content, ...problem.content } } : problem;
  }
  return out;
}

/** @fastify/swagger's per-route transform: zod → JSON Schema, then the implied problems and caller. */
export function openapiTransform(input: TransformInput): ReturnType<typeof jsonSchemaTransform> {
  const out = jsonSchemaTransform(input);
  const transformed = out.schema as Record<string, unknown>;
  if (!transformed || transformed.hide) return out;
  const source = (input.schema ?? {}) as RouteSchema;
  const method = [input.route.method].flat()[0]!;
  const { problems: _problems, otherResponses, ...rest } = transformed as { problems?: unknown; otherResponses?: Record<string, OpenApiResponse>; description?: string; response?: object };
  const caller = callerOf(source, method, input.url);
  const description = [rest.description, caller].filter(Boolean).join('\n\n');
  const role = schemesOf(source).has('admin') ? { 'x-admin-role': requiredRole(method, input.url) } : {};
  return {
    ...out,
    schema: {
      ...rest,
      ...role,
      ...(description ? { description } : {}),
      response: mergeResponses({ ...describeOwn(rest.response as Record<string, unknown>), ...otherResponses }, problemResponses(problemsOf(source, method, input.url), { admin: schemesOf(source).has('admin') })),
    },
  };
}

/** Tags, in the order the reference shows them. */
export const tags = [
  { name: 'agent', description: 'The agent API: what an agent calls with its own API key (`wrt_…`). Proxied calls, token export and leases.' },
  { name: 'proxy', description: 'The authenticated proxy: an agent calls the upstream API through Warrant, which injects the token, refreshes and retries on 401, and turns refusals into typed problems.' },
  { name: 'connections', description: 'Connections: the upstream OAuth grants Warrant holds in its vault, one per owner and provider. Import, read, refresh, revoke, share.' },
  { name: 'connect', description: 'Connect sessions: how an owner grants Warrant access at a provider (the hosted connect page, the authorization redirect, the OAuth callback), and re-connect links.' },
  { name: 'agents', description: 'Agents: identities with their own API keys and narrow grants on connections. Create, list, narrow, suspend, revoke; orphan detection and scope review.' },
  { name: 'owners', description: 'Owners: the people connections and agents belong to. Offboarding revokes everything an owner holds and verifies it; login codes for the consent page.' },
  { name: 'providers', description: 'The provider catalog: endpoints per environment, scopes and the method/path rules each allows, quirks and lifetimes.' },
  { name: 'audit', description: 'The tamper-evident audit log: query, verify the hash chain, anchor its head, export for a SIEM.' },
  { name: 'webhooks', description: 'Signed webhooks (Standard Webhooks) for alerts such as `connection.reauth_required`, and their deliveries.' },
  { name: 'rotations', description: 'Rotation schedules of refresh tokens, private keys and client secrets.' },
  { name: 'admin-keys', description: 'Scoped admin keys (`wak_…`) with a role: `read`, `operate` or `admin`.' },
  { name: 'status', description: "An overview of Warrant's state: counts by status, upcoming expiries, failing connections." },
  { name: 'mcp', description: "The MCP gateway (`/mcp/{server}` in front of remote MCP servers) and Warrant's own MCP server (`/mcp/warrant`), with their protected-resource metadata (RFC 9728)." },
  { name: 'authorization-server', description: "Warrant's own OAuth 2.1 authorization server for agents and MCP clients (oidc-provider): metadata (RFC 8414), authorization code with PKCE, token, dynamic registration (RFC 7591), revocation (RFC 7009), introspection (RFC 7662). Its errors are OAuth error responses (RFC 6749 §5.2), not problems." },
  { name: 'scim', description: 'SCIM 2.0 (RFC 7643, RFC 7644) for identity providers: Users are owners; `active: false` or DELETE offboards. Only with `WARRANT_SCIM_TOKEN`; errors are SCIM error responses.' },
  { name: 'dashboard', description: 'The admin dashboard: server-rendered HTML pages.' },
  { name: 'health', description: 'Liveness, readiness and Prometheus metrics.' },
  { name: 'reference', description: 'This API reference: the OpenAPI document and its rendering.' },
];

/** The Fastify plugin options of @fastify/swagger for Warrant's document. */
export function swaggerOptions(): FastifyDynamicSwaggerOptions {
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Warrant',
        version: '1',
        description:
          'Warrant is a self-hosted credential broker for AI agents: it keeps OAuth grants in an encrypted vault, keeps access tokens fresh, ' +
          'and lets agents reach third-party APIs through an authenticated proxy or an MCP gateway.\n\n' +
          "Errors from Warrant itself are RFC 9457 problem details (`application/problem+json`, schema `Problem`) with a stable `code`; " +
          "upstream answers that are not auth failures pass through as they are.\n\n" +
          'Credentials: the admin API takes the admin token or an admin key (`admin`); agents use their API key (`agent`); ' +
          "MCP clients may use an access token of Warrant's authorization server (`warrantOAuth`).",
      },
      tags,
      components: {
        securitySchemes: {
          admin: { type: 'http', scheme: 'bearer', description: 'The admin token (WARRANT_ADMIN_TOKEN, role admin) or an admin key (wak_…) whose role (read, operate, admin) the route allows: docs/governance.md' },
          agent: { type: 'http', scheme: 'bearer', description: "An agent's API key (wrt_…)" },
          warrantOAuth: {
            type: 'oauth2',
            description: "An access token of Warrant's authorization server (an RFC 9068 JWT for exactly one resource): `/.well-known/oauth-authorization-server`.",
            flows: {
              authorizationCode: {
                authorizationUrl: '/oauth2/authorize',
                tokenUrl: '/oauth2/token',
                refreshUrl: '/oauth2/token',
                scopes: { mcp: 'call an MCP server through the gateway', 'warrant:read': 'read tools of /mcp/warrant', 'warrant:call': 'call_api of /mcp/warrant', 'warrant:request': 'request_access of /mcp/warrant', 'warrant:api': 'the /v1 API' },
              },
              clientCredentials: { tokenUrl: '/oauth2/token', scopes: { mcp: 'call an MCP server through the gateway', 'warrant:read': 'read tools of /mcp/warrant', 'warrant:call': 'call_api of /mcp/warrant' } },
            },
          },
          scim: { type: 'http', scheme: 'bearer', description: 'WARRANT_SCIM_TOKEN' },
          metrics: { type: 'http', scheme: 'bearer', description: 'WARRANT_METRICS_TOKEN, when it is set (unset: /metrics is open)' },
        },
        schemas: { Problem: problemSchema, OAuthError: oauthErrorSchema },
      },
    } as unknown as FastifyDynamicSwaggerOptions['openapi'],
    transform: openapiTransform as FastifyDynamicSwaggerOptions['transform'],
    // Routes served before Fastify's router (the proxy, the authorization server, MCP) join the
    // document here; a path a route documents itself wins.
    transformObject: ({ openapiObject }: { openapiObject: Record<string, unknown> }) => {
      const paths = (openapiObject.paths ?? {}) as Record<string, Record<string, unknown>>;
      for (const [path, item] of Object.entries(rawPathItems())) paths[path] = { ...item, ...paths[path] };
      return { ...openapiObject, paths };
    },
  } as FastifyDynamicSwaggerOptions;
}

/** Registers @fastify/swagger with Warrant's options; the document is served by `/openapi.json` (app.ts). */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, swaggerOptions());
}
