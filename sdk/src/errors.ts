// The errors Warrant answers with, one class per problem `code`, all generated from one table.
// Wire members keep their meaning but get camelCase names (`retry_after` → `retryAfter`).

/** A problem body as Warrant sends it (RFC 9457): `type`, `title`, `status`, `code`, `instance`, … */
export type ProblemObject = Readonly<Record<string, unknown>>;

/** What the response adds to a problem: its status, headers (for `Retry-After`) and request id. */
export interface ProblemInit {
  status?: number;
  headers?: Headers;
}

type Reader = (problem: ProblemObject, headers: Headers | undefined) => unknown;

const str =
  (wire: string) =>
  (p: ProblemObject): string | undefined =>
    typeof p[wire] === 'string' ? (p[wire] as string) : undefined;

const num =
  (wire: string) =>
  (p: ProblemObject): number | undefined =>
    typeof p[wire] === 'number' && Number.isFinite(p[wire]) ? (p[wire] as number) : undefined;

const strings =
  (wire: string) =>
  (p: ProblemObject): string[] | undefined => {
    const v = p[wire];
    return Array.isArray(v) && v.every((s) => typeof s === 'string') ? [...(v as string[])] : undefined;
  };

const raw =
  (wire: string) =>
  (p: ProblemObject): unknown =>
    p[wire];

/** Seconds to wait: the `retry_after` member, else the `Retry-After` header (seconds or an HTTP date). */
export function retryAfterOf(p: ProblemObject, headers: Headers | undefined): number | undefined {
  const member = p.retry_after;
  if (typeof member === 'number' && Number.isFinite(member) && member >= 0) return member;
  const header = headers?.get('retry-after')?.trim();
  if (!header) return undefined;
  if (/^\d+$/.test(header)) return Number(header);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

interface Spec {
  /** Whether the same call may succeed later without anyone changing anything. */
  retryable: boolean;
  /** What the agent should do about it. */
  nextStep: string;
  members: Record<string, Reader>;
}

const retryAfter = retryAfterOf;

/** Every problem `code` Warrant defines, with what an agent should do about it. */
const table = {
  agent_unauthenticated: {
    retryable: false,
    nextStep: 'The agent key is missing, wrong, expired or revoked: check WARRANT_AGENT_KEY, or ask an admin for a new key. Retrying will not help.',
    members: {},
  },
  agent_suspended: {
    retryable: false,
    nextStep: 'The agent is suspended (see `reasons`); stop and tell a human: an admin reactivates it with PATCH /v1/agents/{id} {"status":"active"}.',
    members: { agent: str('agent'), reasons: strings('reasons') },
  },
  admin_unauthenticated: {
    retryable: false,
    nextStep: 'This route needs an admin credential, not an agent key.',
    members: {},
  },
  admin_forbidden: {
    retryable: false,
    nextStep: "The admin key's role is below `requiredRole`: use a key with that role.",
    members: { requiredRole: str('required_role'), role: str('role') },
  },
  policy_denied: {
    retryable: false,
    nextStep: "The agent's grant does not cover this connection, method or path, and the upstream was not called: stay within the grant, or ask an admin to widen it. Retrying will not help.",
    members: { connection: str('connection'), method: str('method'), path: str('path'), grantedScopes: strings('granted_scopes') },
  },
  scope_insufficient: {
    retryable: false,
    nextStep: 'The upstream needs `requiredScope`, which the connection does not hold: the owner must connect again with that scope, then an admin adds it to the grant.',
    members: { requiredScope: str('required_scope'), grantedScopes: strings('granted_scopes'), connection: str('connection') },
  },
  reauth_required: {
    retryable: false,
    nextStep: 'The grant at the provider is revoked or expired for good: the owner must connect again (see `reauthUrl`). Retrying will not help until then.',
    members: { reauthUrl: str('reauth_url'), connection: str('connection') },
  },
  refresh_unavailable: {
    retryable: true,
    nextStep: "The provider's identity service is failing and no valid token is left: wait `retryAfter` seconds and try again (the SDK does so within `refreshWaitMs`).",
    members: { retryAfter, connection: str('connection') },
  },
  upstream_rate_limited: {
    retryable: true,
    nextStep: 'The upstream API kept rate limiting after Warrant retried: wait `retryAfter` seconds and slow down.',
    members: { retryAfter, retries: num('retries'), upstreamStatus: num('upstream_status') },
  },
  rate_limited: {
    retryable: true,
    nextStep: "Warrant's own limit (`limit`) for this agent or connection was reached: wait `retryAfter` seconds and lower the call rate or the calls in flight.",
    members: { retryAfter, limit: str('limit') },
  },
  upstream_unavailable: {
    retryable: true,
    nextStep: 'The upstream API could not be reached or timed out after Warrant retried: try again after `retryAfter` seconds, with backoff.',
    members: { retryAfter, retries: num('retries'), upstreamStatus: num('upstream_status') },
  },
  upstream_auth_failed: {
    retryable: false,
    nextStep: "The upstream refused a freshly refreshed token while the grant is still valid: look at `upstreamStatus` and `upstreamBody` (often the provider's API settings). Retrying will not help.",
    members: { upstreamStatus: num('upstream_status'), upstreamBody: str('upstream_body') },
  },
  invalid_request: {
    retryable: false,
    nextStep: 'The request is malformed at `field`: fix it. The same request will be refused again.',
    members: { field: str('field'), errors: raw('errors') },
  },
  not_found: {
    retryable: false,
    nextStep: 'No such connection, route or resource: check the id.',
    members: {},
  },
  conflict: {
    retryable: false,
    nextStep: 'The resource is not in a state that allows this (see `detail`; a missing `param` is filled by connecting again).',
    members: { param: str('param'), header: str('header'), connection: str('connection') },
  },
  payload_too_large: {
    retryable: false,
    nextStep: 'The request body is larger than Warrant allows: send at most `limitBytes` bytes.',
    members: { limitBytes: num('limit_bytes') },
  },
  internal_error: {
    retryable: false,
    nextStep: "A bug in Warrant: give the `requestId` to its operator (the cause is in Warrant's log).",
    members: {},
  },
  unavailable: {
    retryable: true,
    nextStep: 'Warrant cannot serve right now (its store or audit log): try again after `retryAfter` seconds.',
    members: { retryAfter },
  },
} as const satisfies Record<string, Spec>;

/** A problem `code` this SDK knows. */
export type ProblemCode = keyof typeof table;

/** Every problem `code` this SDK knows, in the order Warrant documents them. */
export const problemCodes = Object.freeze(Object.keys(table)) as readonly ProblemCode[];

/**
 * An error Warrant itself answered with (`application/problem+json`). Match on `code` or on the
 * subclass, never on `message`. `problem` is the body as received; nothing in it is a secret.
 */
export class WarrantError extends Error {
  /** Defaults; each generated class sets its own. */
  static readonly nextStep: string = 'Read `detail`.';
  static readonly isRetryable: boolean = false;

  readonly code: string;
  readonly status: number;
  readonly title: string;
  declare readonly detail?: string;
  /** The problem body as Warrant sent it. */
  readonly problem: ProblemObject;
  /** Warrant's request id (`instance`, or the `Warrant-Request-Id` header): give it to the operator. */
  declare readonly requestId?: string;
  /** Whether the same call may succeed later without anyone changing anything. */
  readonly isRetryable: boolean;
  /** What the agent should do about it. */
  readonly nextStep: string;

  constructor(problem: ProblemObject, init: ProblemInit = {}) {
    const code = typeof problem.code === 'string' ? problem.code : 'unknown';
    const title = typeof problem.title === 'string' ? problem.title : code;
    const detail = typeof problem.detail === 'string' ? problem.detail : undefined;
    super(`${code}: ${detail ?? title}`);
    const statics = new.target as unknown as { nextStep: string; isRetryable: boolean };
    this.code = code;
    this.status = init.status ?? (typeof problem.status === 'number' ? problem.status : 0);
    this.title = title;
    if (detail !== undefined) this.detail = detail;
    this.problem = problem;
    const requestId = typeof problem.instance === 'string' ? problem.instance : (init.headers?.get('warrant-request-id') ?? undefined);
    if (requestId) this.requestId = requestId;
    this.isRetryable = statics.isRetryable;
    this.nextStep = statics.nextStep;
  }
}
Object.defineProperty(WarrantError.prototype, 'name', { value: 'WarrantError', writable: true, configurable: true });

/**
 * A problem with a `code` this SDK version does not know (a newer Warrant), or, with code
 * `unexpected_response`, an answer from Warrant's own routes that is not a problem at all (a
 * proxy in front of Warrant answering for it).
 */
export class UnknownProblemError extends WarrantError {
  static override readonly nextStep = 'Read `detail`; the code is newer than this SDK (upgrade @warrant/sdk) or the answer did not come from Warrant.';
  constructor(problem: ProblemObject, init: ProblemInit = {}) {
    super(problem, init);
    const status = this.status;
    (this as { isRetryable: boolean }).isRetryable = status === 429 || status === 502 || status === 503 || status === 504;
  }
}
Object.defineProperty(UnknownProblemError.prototype, 'name', { value: 'UnknownProblemError', writable: true, configurable: true });

type MembersOf<S extends Spec> = { readonly [K in keyof S['members']]: ReturnType<S['members'][K]> };

/** The instance type of the class for `code`. */
export type ProblemError<C extends ProblemCode> = WarrantError & { readonly code: C } & MembersOf<(typeof table)[C]>;

/** A generated class: `instanceof` works, and its statics say what the code means. */
export interface ProblemErrorClass<C extends ProblemCode> {
  new (problem: ProblemObject, init?: ProblemInit): ProblemError<C>;
  readonly prototype: ProblemError<C>;
  readonly code: C;
  readonly nextStep: string;
  readonly isRetryable: boolean;
}

/** `policy_denied` → `PolicyDeniedError`, `internal_error` → `InternalError`. */
const className = (code: string) => `${code.replace(/_error$/, '').replace(/(^|_)([a-z])/g, (_, _sep: string, c: string) => c.toUpperCase())}Error`;

function defineClasses(): { readonly [C in ProblemCode]: ProblemErrorClass<C> } {
  const classes: Record<string, unknown> = {};
  for (const code of problemCodes) {
    const spec: Spec = table[code];
    const cls = class extends WarrantError {
      static readonly code = code;
      static override readonly nextStep = spec.nextStep;
      static override readonly isRetryable = spec.retryable;
      constructor(problem: ProblemObject, init: ProblemInit = {}) {
        super(problem, init);
        for (const [member, read] of Object.entries(spec.members)) {
          Object.defineProperty(this, member, { value: read(problem, init.headers), enumerable: true });
        }
      }
    };
    Object.defineProperty(cls, 'name', { value: className(code) });
    Object.defineProperty(cls.prototype, 'name', { value: className(code), writable: true, configurable: true });
    classes[code] = cls;
  }
  return Object.freeze(classes) as { readonly [C in ProblemCode]: ProblemErrorClass<C> };
}

/** The class of each known code. */
export const errorClasses = defineClasses();

const byCode = new Map<string, ProblemErrorClass<ProblemCode>>(Object.entries(errorClasses) as [string, ProblemErrorClass<ProblemCode>][]);

/** The typed error for a problem body: its code's class, or `UnknownProblemError`. */
export function errorFromProblem(problem: ProblemObject, init: ProblemInit = {}): WarrantError {
  const cls = typeof problem.code === 'string' ? byCode.get(problem.code) : undefined;
  return cls ? new cls(problem, init) : new UnknownProblemError(problem, init);
}

export const AgentUnauthenticatedError = errorClasses.agent_unauthenticated;
export type AgentUnauthenticatedError = ProblemError<'agent_unauthenticated'>;
export const AgentSuspendedError = errorClasses.agent_suspended;
export type AgentSuspendedError = ProblemError<'agent_suspended'>;
export const AdminUnauthenticatedError = errorClasses.admin_unauthenticated;
export type AdminUnauthenticatedError = ProblemError<'admin_unauthenticated'>;
export const AdminForbiddenError = errorClasses.admin_forbidden;
export type AdminForbiddenError = ProblemError<'admin_forbidden'>;
export const PolicyDeniedError = errorClasses.policy_denied;
export type PolicyDeniedError = ProblemError<'policy_denied'>;
export const ScopeInsufficientError = errorClasses.scope_insufficient;
export type ScopeInsufficientError = ProblemError<'scope_insufficient'>;
export const ReauthRequiredError = errorClasses.reauth_required;
export type ReauthRequiredError = ProblemError<'reauth_required'>;
export const RefreshUnavailableError = errorClasses.refresh_unavailable;
export type RefreshUnavailableError = ProblemError<'refresh_unavailable'>;
export const UpstreamRateLimitedError = errorClasses.upstream_rate_limited;
export type UpstreamRateLimitedError = ProblemError<'upstream_rate_limited'>;
export const RateLimitedError = errorClasses.rate_limited;
export type RateLimitedError = ProblemError<'rate_limited'>;
export const UpstreamUnavailableError = errorClasses.upstream_unavailable;
export type UpstreamUnavailableError = ProblemError<'upstream_unavailable'>;
export const UpstreamAuthFailedError = errorClasses.upstream_auth_failed;
export type UpstreamAuthFailedError = ProblemError<'upstream_auth_failed'>;
export const InvalidRequestError = errorClasses.invalid_request;
export type InvalidRequestError = ProblemError<'invalid_request'>;
export const NotFoundError = errorClasses.not_found;
export type NotFoundError = ProblemError<'not_found'>;
export const ConflictError = errorClasses.conflict;
export type ConflictError = ProblemError<'conflict'>;
export const PayloadTooLargeError = errorClasses.payload_too_large;
export type PayloadTooLargeError = ProblemError<'payload_too_large'>;
export const InternalError = errorClasses.internal_error;
export type InternalError = ProblemError<'internal_error'>;
export const UnavailableError = errorClasses.unavailable;
export type UnavailableError = ProblemError<'unavailable'>;

/**
 * A non-2xx answer of the upstream API, from `warrant.json()` (`warrant.fetch()` returns such
 * answers as they are). Not a WarrantError: Warrant did its part.
 */
export class UpstreamHttpError extends Error {
  readonly status: number;
  /** The upstream's body as text (Warrant has removed the token from it). */
  readonly body: string;
  declare readonly requestId?: string;

  constructor(status: number, body: string, context: { method: string; path: string; requestId?: string | null }) {
    super(`the upstream answered ${status} to ${context.method} ${context.path.split('?')[0]}`);
    this.status = status;
    this.body = body;
    if (context.requestId) this.requestId = context.requestId;
  }
}
Object.defineProperty(UpstreamHttpError.prototype, 'name', { value: 'UpstreamHttpError', writable: true, configurable: true });
