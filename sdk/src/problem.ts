import { errorFromProblem, type WarrantError } from './errors.js';

/** Every problem Warrant sends has a `type` under this base (RFC 9457 §3.1.1). */
export const problemTypeBase = 'https://warrant.dev/problems/';

/** Is this `Content-Type` an RFC 9457 problem (`application/problem+json`, with or without parameters)? */
export function isProblemContentType(contentType: string | null | undefined): boolean {
  if (!contentType) return false;
  return contentType.split(';', 1)[0]!.trim().toLowerCase() === 'application/problem+json';
}

/**
 * Warrant's own problem in an answer, or undefined when the answer is something else (an upstream
 * API's answer passed through the proxy, problem documents of its own included). A problem is
 * Warrant's when it is `application/problem+json`, a JSON object, has a string `code` and a `type`
 * under Warrant's base. Never throws, whatever the body.
 */
export function parseProblem(response: { status: number; headers: Headers }, text: string): WarrantError | undefined {
  if (!isProblemContentType(response.headers.get('content-type'))) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const problem = body as Record<string, unknown>;
  if (typeof problem.code !== 'string' || typeof problem.type !== 'string' || !problem.type.startsWith(problemTypeBase)) return undefined;
  return errorFromProblem(problem, { status: response.status, headers: response.headers });
}
