// Every problem `code` Warrant answers with (DESIGN.md, "HTTP contract"), in one place.
// A WarrantError carries a public `detail` and extra problem members; its `cause` is private:
// logged with secrets redacted, never sent.

export const problemTypes = {
  agent_unauthenticated: { status: 401, title: "The agent's credential is missing, wrong, expired or revoked" },
  agent_suspended: { status: 403, title: 'The agent is suspended; an admin must reactivate it' },
  admin_unauthenticated: { status: 401, title: 'The admin credential is missing or wrong' },
  admin_forbidden: { status: 403, title: "The admin credential's role does not allow this" },
  policy_denied: { status: 403, title: 'The agent has no grant for this connection, scope, method or path' },
  scope_insufficient: { status: 403, title: 'The upstream refused the call for a missing scope' },
  reauth_required: { status: 424, title: 'The upstream grant is revoked or expired for good; the owner must connect again' },
  refresh_unavailable: { status: 503, title: 'The identity provider is failing and no valid token is left' },
  upstream_rate_limited: { status: 429, title: 'The upstream kept rate limiting after the allowed retries' },
  rate_limited: { status: 429, title: "Warrant's own per-agent or per-connection limit was reached" },
  upstream_unavailable: { status: 502, title: 'The upstream could not be reached after the allowed retries' },
  upstream_auth_failed: { status: 401, title: 'The upstream refused a freshly refreshed token' },
  invalid_request: { status: 400, title: 'The request is malformed' },
  not_found: { status: 404, title: 'No such resource' },
  conflict: { status: 409, title: 'The resource is not in a state that allows this' },
  payload_too_large: { status: 413, title: 'The request body is larger than allowed' },
  internal_error: { status: 500, title: 'Internal error' },
  unavailable: { status: 503, title: 'Warrant cannot serve this right now' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof problemTypes;

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  code: ProblemCode;
  detail?: string;
  instance?: string;
  [member: string]: unknown;
}

export class WarrantError extends Error {
  override name = 'WarrantError';
  readonly status: number;

  constructor(
    readonly code: ProblemCode,
    readonly detail?: string,
    /** Extra RFC 9457 members, e.g. `field`, `retry_after`, `reauth_url`. Public: never put a secret here. */
    readonly members: Record<string, unknown> = {},
    options?: { cause?: unknown; status?: number },
  ) {
    super(detail ?? problemTypes[code].title, options?.cause === undefined ? undefined : { cause: options.cause });
    this.status = options?.status ?? problemTypes[code].status;
  }

  toProblem(instance?: string): ProblemBody {
    const body: ProblemBody = {
      type: `https://warrant.dev/problems/${this.code.replaceAll('_', '-')}`,
      title: problemTypes[this.code].title,
      status: this.status,
      code: this.code,
      ...this.members,
    };
    // An internal error goes out generic: its detail may describe internals.
    if (this.detail && this.code !== 'internal_error') body.detail = this.detail;
    if (instance) body.instance = instance;
    return body;
  }
}

export const invalidRequest = (field: string, detail: string) =>
  new WarrantError('invalid_request', `${field}: ${detail}`, { field });

export const notFound = (what: string) => new WarrantError('not_found', `${what} not found`);

export function isWarrantError(err: unknown, code?: ProblemCode): err is WarrantError {
  return err instanceof WarrantError && (code === undefined || err.code === code);
}
