import { problemTypes, WarrantError, type ProblemCode } from '../errors/index.ts';

// Problem responses of the OpenAPI document: the shared Problem schema (RFC 9457 with Warrant's
// members, docs/errors.md), an example of each code made the way real answers are, and the
// `responses` entries for a list of codes, one per status.

/** An OpenAPI Response Object (loosely typed: it is handed to @fastify/swagger as is). */
export type OpenApiResponse = { description: string; headers?: Record<string, unknown>; content?: Record<string, Record<string, unknown>> };

export const PROBLEM_SCHEMA_REF = '#/components/schemas/Problem';
export const PROBLEM_MEDIA_TYPE = 'application/problem+json';

/** RFC 9457 problem details with Warrant's members (docs/errors.md). */
export const problemSchema = {
  type: 'object',
  description: 'RFC 9457 problem details. Match on `code`, never on `title` or `detail`.',
  required: ['type', 'title', 'status', 'code'],
  properties: {
    type: { type: 'string', format: 'uri', description: 'https://warrant.dev/problems/{code with dashes}' },
    title: { type: 'string', description: 'The fixed title of the code' },
    status: { type: 'integer', description: 'The HTTP status' },
    code: { type: 'string', enum: Object.keys(problemTypes), description: 'Stable machine-readable code' },
    detail: { type: 'string', description: 'A sentence about this occurrence; never a secret' },
    instance: { type: 'string', description: 'The request id, also in Warrant\'s log (and the `Warrant-Request-Id` header of proxied calls)' },
    field: { type: 'string', description: '`invalid_request`: where the input is at fault, e.g. `body.grants[0].scopes`, `query.limit`, `path`' },
    required_scope: { type: 'string', description: '`scope_insufficient`: the scope the upstream asked for, when known' },
    granted_scopes: { type: 'array', items: { type: 'string' }, description: '`scope_insufficient`, `policy_denied`: what the grant holds' },
    retry_after: { type: 'number', description: 'Seconds to wait before retrying (also the `Retry-After` header)' },
    reauth_url: { type: 'string', format: 'uri', description: '`reauth_required`: the page where the owner connects again' },
    connection: { type: 'string', description: 'The connection concerned' },
    limit: { type: 'string', description: '`rate_limited`: which limit (`agent_rate`, `agent_concurrency`, `connection_rate`, `connection_concurrency`, `agent_audit_share`, `admin_auth`)' },
    required_role: { type: 'string', enum: ['read', 'operate', 'admin'], description: '`admin_forbidden`: the role the route needs' },
    role: { type: 'string', enum: ['read', 'operate', 'admin'], description: '`admin_forbidden`: the role of the key that called' },
    upstream_status: { type: 'integer', description: '`upstream_auth_failed`: what the upstream answered' },
    limit_bytes: { type: 'integer', description: '`payload_too_large` on proxied calls: the body limit' },
  },
  additionalProperties: true,
} as const;

/** The OAuth 2.0 error response of the authorization server's endpoints (RFC 6749 §5.2). */
export const oauthErrorSchema = {
  type: 'object',
  required: ['error'],
  properties: { error: { type: 'string', examples: ['invalid_request', 'invalid_client', 'invalid_grant', 'invalid_target'] }, error_description: { type: 'string' } },
} as const;

/** What each problem looks like in the examples: a typical detail and members. */
const exampleOf: Record<ProblemCode, [detail: string | undefined, members?: Record<string, unknown>]> = {
  agent_unauthenticated: ['send the agent key as Authorization: Bearer …'],
  agent_suspended: ['the agent is suspended (owner_offboarded); an admin can reactivate it with PATCH /v1/agents/agt_3n8q {"status":"active"} once its owner confirms it is still needed', { agent: 'agt_3n8q', reasons: ['owner_offboarded'] }],
  admin_unauthenticated: ['send the admin token or an admin key as Authorization: Bearer …'],
  admin_forbidden: ['DELETE /v1/connections/:id needs the admin role operate; this admin key has the role read', { required_role: 'operate', role: 'read' }],
  policy_denied: ['no scope of this grant allows DELETE /items/42', { connection: 'con_7hq2', method: 'DELETE', path: '/items/42', granted_scopes: ['items:read'] }],
  scope_insufficient: ['the upstream refused the call for a missing scope', { required_scope: 'items:write', granted_scopes: ['items:read'] }],
  reauth_required: ['the grant of con_7hq2 was revoked at the provider; its owner must connect again', { connection: 'con_7hq2', reauth_url: 'https://warrant.example.com/v1/connections/con_7hq2' }],
  refresh_unavailable: ['the identity provider is failing and the token expired', { retry_after: 30 }],
  upstream_rate_limited: ['the upstream kept answering 429 after 3 retries', { retry_after: 20 }],
  rate_limited: ['this agent exceeded 20 calls per second', { limit: 'agent_rate', retry_after: 1 }],
  upstream_unavailable: ['the upstream did not answer within 30 s', { retry_after: 5 }],
  upstream_auth_failed: ['the upstream refused a freshly refreshed token', { upstream_status: 401 }],
  invalid_request: ['body.scopes: expected array, received string', { field: 'body.scopes' }],
  not_found: ['connection con_7hq2 not found'],
  conflict: ['the connection is revoked'],
  payload_too_large: ['the request body is larger than allowed'],
  internal_error: [undefined],
  unavailable: ['the store is unreachable or saturated right now; try again shortly', { retry_after: 1 }],
};

/** On the admin API, `rate_limited` is the failed-authentication budget. */
const adminRateLimited: [string, Record<string, unknown>] = ['too many failed admin authentications from this address; wait before trying again', { limit: 'admin_auth', retry_after: 3 }];

/** Statuses a code is also answered with besides its own (DESIGN: upstream_unavailable is 502 or 504). */
const alsoWith: Partial<Record<ProblemCode, number[]>> = { upstream_unavailable: [504] };

/** An example problem body, made the way Warrant makes real ones. */
export function problemExample(code: ProblemCode, status?: number, admin = false): Record<string, unknown> {
  const [detail, members] = admin && code === 'rate_limited' ? adminRateLimited : exampleOf[code];
  return new WarrantError(code, detail, members, { status }).toProblem('req_5f0c2e9a7b1d4c6e8a90') as Record<string, unknown>;
}

/**
 * One response per status for these problem codes: `application/problem+json` with the Problem
 * schema, the description naming each code, an example of each.
 */
export function problemResponses(codes: Iterable<ProblemCode>, { admin = false } = {}): Record<string, OpenApiResponse> {
  const byStatus = new Map<number, ProblemCode[]>();
  for (const code of new Set(codes)) {
    for (const status of [problemTypes[code].status, ...(alsoWith[code] ?? [])]) byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, OpenApiResponse> = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    out[String(status)] = {
      description: list.map((c) => `\`${c}\`: ${problemTypes[c].title}`).join('; '),
      content: {
        [PROBLEM_MEDIA_TYPE]: {
          schema: { $ref: PROBLEM_SCHEMA_REF },
          examples: Object.fromEntries(list.map((c) => [c, { summary: problemTypes[c].title, value: problemExample(c, status, admin) }])),
        },
      },
    };
  }
  return out;
}
