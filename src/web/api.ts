import type { FastifyInstance } from 'fastify';

// The dashboard is a client of the admin API: every page calls the admin routes in-process
// (`inject`) with the signed-in credential as the bearer, so authentication, roles
// (403 admin_forbidden), validation (400 invalid_request) and audit entries are the API's own.

/** An RFC 9457 problem as the API answers it (docs/errors.md). */
export interface Problem {
  status: number;
  code?: string;
  title?: string;
  detail?: string;
  [member: string]: unknown;
}

export type ApiResult<T> = { ok: true; status: number; body: T } | { ok: false; status: number; problem: Problem };

export interface Api {
  call<T = Record<string, unknown>>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body?: unknown): Promise<ApiResult<T>>;
}

export class ApiProblem extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title ?? `status ${problem.status}`);
  }
}

/** Unwraps a result, throwing its problem for the page handler to render. */
export function must<T>(r: ApiResult<T>): T {
  if (!r.ok) throw new ApiProblem(r.problem);
  return r.body;
}

export function apiFor(app: FastifyInstance, credential: string): Api {
  return {
    async call(method, url, body) {
      const res = await app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${credential}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
      });
      let parsed: unknown;
      try {
        parsed = res.body ? JSON.parse(res.body) : {};
      } catch {
        parsed = {};
      }
      if (res.statusCode < 400) return { ok: true, status: res.statusCode, body: parsed as never };
      const p = (parsed && typeof parsed === 'object' ? parsed : {}) as Problem;
      return { ok: false, status: res.statusCode, problem: { ...p, status: res.statusCode } };
    },
  };
}
