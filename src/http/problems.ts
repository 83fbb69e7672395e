import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { WarrantError, invalidRequest } from '../errors/index.ts';
import { isStoreUnavailable } from '../store/index.ts';

export const problemContentType = 'application/problem+json';

/** Status, headers and body of a problem answer; shared by Fastify routes and the raw proxy path. */
export function problemResponse(err: WarrantError, instance: string): { status: number; headers: Record<string, string>; body: string } {
  const problem = err.toProblem(instance);
  const headers: Record<string, string> = { 'content-type': `${problemContentType}; charset=utf-8` };
  const retryAfter = problem.retry_after;
  if (typeof retryAfter === 'number' && retryAfter >= 0) headers['retry-after'] = String(Math.ceil(retryAfter));
  if (err.code === 'agent_unauthenticated' || err.code === 'admin_unauthenticated') headers['www-authenticate'] = 'Bearer realm="warrant"';
  return { status: err.status, headers, body: JSON.stringify(problem) };
}

export function sendProblem(reply: FastifyReply, err: WarrantError): FastifyReply {
  const { status, headers, body } = problemResponse(err, reply.request.id);
  return reply.code(status).headers(headers).send(body);
}

/**
 * Any error as the problem an HTTP client sees: Warrant's own as they are; a store that is down
 * or whose pool did not free a connection in time as a 503 the client can retry; anything else
 * as a generic 500 whose cause is only logged.
 */
export function asProblem(err: unknown): WarrantError {
  if (err instanceof WarrantError) return err;
  if (isStoreUnavailable(err)) {
    return new WarrantError('unavailable', 'the store is unreachable or saturated right now; try again shortly', { retry_after: 1 }, { cause: err });
  }
  return new WarrantError('internal_error', undefined, {}, { cause: err });
}

/** `body.grants[0].scopes` style location of the first failing field, from a JSON pointer. */
function fieldOf(location: string | undefined, instancePath: string): string {
  const parts = [location === 'querystring' ? 'query' : (location ?? 'body')];
  for (const p of instancePath.split('/').filter(Boolean)) parts.push(/^\d+$/.test(p) ? `[${p}]` : p);
  return parts.join('.').replaceAll('.[', '[');
}

/**
 * Bodies are strict (DESIGN: every input validated): an unknown member is refused with its name as
 * the field, so a typo (`expires_at` for `expires_in`) is not silently dropped. A name that does not
 * look like one is not repeated: it may be a value pasted in the wrong place.
 */
function unknownField(parent: string, keys: unknown): WarrantError {
  const key = Array.isArray(keys) ? keys[0] : undefined;
  if (typeof key === 'string' && /^[A-Za-z0-9_$-]{1,32}$/.test(key)) return invalidRequest(`${parent}.${key}`, 'is not a known field');
  return invalidRequest(parent, 'has a member that is not a known field');
}

function toWarrantError(err: FastifyError): WarrantError {
  if (err instanceof WarrantError || isStoreUnavailable(err)) return asProblem(err);
  if (hasZodFastifySchemaValidationErrors(err)) {
    const first = err.validation[0]!;
    const field = fieldOf(err.validationContext, first.instancePath);
    if (first.keyword === 'unrecognized_keys') return unknownField(field, (first.params as { keys?: unknown }).keys);
    return invalidRequest(field, first.message);
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return invalidRequest('body', 'is not valid JSON');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return invalidRequest('content-type', 'is not supported here; send application/json');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new WarrantError('payload_too_large', 'the request body is larger than allowed');
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new WarrantError('invalid_request', err.message.slice(0, 200));
  }
  return new WarrantError('internal_error', undefined, {}, { cause: err });
}

/** The path for a message: no query (it may carry a secret), at most 200 characters. */
const shortPath = (url: string) => {
  const path = url.split('?')[0]!;
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
};

export function installProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const problem = toWarrantError(err);
    // Typed answers about others' failures (refresh_unavailable, upstream_*) are the agent's
    // business, and already logged where they arise; Warrant's own failures are logged here.
    if (problem.code === 'internal_error' || problem.code === 'unavailable' || isResponseSerializationError(err)) {
      // The cause is logged (the logger redacts secrets); the client gets the generic body.
      request.log.error({ err: problem.cause ?? err, code: problem.code }, 'request failed');
    }
    return sendProblem(reply, problem);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, new WarrantError('not_found', `no route ${request.method} ${shortPath(request.url)}`)),
  );
}
