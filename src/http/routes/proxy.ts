import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import type { Forwarder, ProxyAgent } from '../../proxy/forward.ts';
import { bearerOf } from '../auth.ts';
import { WarrantError } from '../../errors/index.ts';

const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/**
 * `ANY /v1/proxy/{connection}/{path…}`. The body is not parsed: the proxy reads the raw stream,
 * and the path is taken from the raw URL so no decoding happens before the SSRF check.
 */
export function proxyRoutes(deps: { forwarder: Forwarder; authenticate(bearer: string | undefined): Promise<ProxyAgent> }) {
  return async (app: FastifyInstance) => {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

    const handler = async (request: FastifyRequest, reply: FastifyReply) => {
      reply.header('warrant-request-id', request.id);
      const agent = await deps.authenticate(bearerOf(request));
      const raw = request.raw.url ?? '';
      const q = raw.indexOf('?');
      const pathPart = q < 0 ? raw : raw.slice(0, q);
      const m = /^\/v1\/proxy\/([^/?#]+)(.*)$/.exec(pathPart);
      if (!m) throw new WarrantError('invalid_request', 'path: expected /v1/proxy/{connection}/{path}', { field: 'path' });
      const res = await deps.forwarder.forward({
        requestId: request.id,
        agent,
        connectionId: decodeURIComponent(m[1]!),
        method: request.method,
        rawPath: m[2] ?? '',
        rawQuery: q < 0 ? '' : raw.slice(q + 1),
        headers: request.headers,
        body: request.body as Readable | undefined,
      });
      reply.code(res.status);
      for (const [name, value] of Object.entries(res.headers)) reply.header(name, value);
      return reply.send(res.body ?? undefined);
    };

    // Every proxied call is an audit entry already; per-request access logs at info would only
    // repeat it, at a cost on the hottest path. Warnings and errors are still logged.
    const options = { method: [...methods], handler, schema: { hide: true }, logLevel: 'warn' as const };
    app.route({ ...options, url: '/v1/proxy/:connection' });
    app.route({ ...options, url: '/v1/proxy/:connection/*' });
  };
}

