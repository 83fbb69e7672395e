import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { WarrantError, invalidRequest } from '../errors/index.ts';

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

/** `body.grants[0].scopes` style location of the first failing field, from a JSON pointer. */
function fieldOf(location: string | undefined, instancePath: string): string {
  const parts = [location === 'querystring' ? 'query' : (location ?? 'body')];
  for (const p of instancePath.split('/').filter(Boolean)) parts.push(/^\d+$/.test(p) ? `[${p}]` : p);
  return parts.join('.').replaceAll('.[', '[');
}

function toWarrantError(err: FastifyError): WarrantError {
  if (err instanceof WarrantError) return err;
  if (hasZodFastifySchemaValidationErrors(err)) {
    const first = err.validation[0]!;
    return invalidRequest(fieldOf(err.validationContext, first.instancePath), first.message);
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

export function installProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const problem = toWarrantError(err);
    if (problem.status >= 500 || isResponseSerializationError(err)) {
      // The cause is logged (the logger redacts secrets); the client gets the generic body.
      request.log.error({ err: problem.cause ?? err, code: problem.code }, 'request failed');
    }
    return sendProblem(reply, problem);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, new WarrantError('not_found', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );
}
