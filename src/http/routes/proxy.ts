import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import type { Logger } from 'pino';
import type { Forwarder, ProxyAgent } from '../../proxy/index.ts';
import { WarrantError } from '../../errors/index.ts';
import { problemResponse } from '../problems.ts';
import { bearerFrom } from '../auth.ts';
import { newRequestId } from '../request-id.ts';
import type { Metrics } from '../metrics.ts';

const methods = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const PREFIX = '/v1/proxy/';

/**
 * `ANY /v1/proxy/{connection}/{path…}`, served on the raw node:http request ahead of Fastify's
 * router (the app's serverFactory hands these requests here). The proxy is the hottest path:
 * it needs no body parsing, no schema, no per-request child logger, so it skips the framework's
 * request pipeline and keeps Warrant's own pieces: request id, problem answers, metrics, error
 * logs. The path is taken from the raw URL, so nothing is decoded before the SSRF check, and the
 * request body is the raw stream.
 */
export function rawProxyRoute(deps: {
  forwarder: Forwarder;
  authenticate(bearer: string | undefined): Promise<ProxyAgent>;
  logger: Logger;
  metrics: Metrics;
}) {
  async function handle(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const requestId = newRequestId();
    const started = performance.now();
    res.once('finish', () =>
      deps.metrics.httpRequests.observe({ method: req.method!, route: '/v1/proxy/:connection/*', status: String(res.statusCode) }, (performance.now() - started) / 1000),
    );
    try {
      const agent = await deps.authenticate(bearerFrom(req.headers.authorization));
      const q = url.indexOf('?');
      const pathPart = q < 0 ? url : url.slice(0, q);
      const slash = pathPart.indexOf('/', PREFIX.length);
      const rawConnection = slash < 0 ? pathPart.slice(PREFIX.length) : pathPart.slice(PREFIX.length, slash);
      if (!rawConnection) throw new WarrantError('invalid_request', 'path: expected /v1/proxy/{connection}/{path}', { field: 'path' });
      let connectionId: string;
      try {
        connectionId = decodeURIComponent(rawConnection);
      } catch {
        throw new WarrantError('invalid_request', 'path: the connection id is not valid percent-encoding', { field: 'path' });
      }
      const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
      const result = await deps.forwarder.forward({
        requestId,
        agent,
        connectionId,
        method: req.method!,
        rawPath: slash < 0 ? '' : pathPart.slice(slash),
        rawQuery: q < 0 ? '' : url.slice(q + 1),
        headers: req.headers,
        body: hasBody ? req : undefined,
      });
      res.writeHead(result.status, result.headers);
      const body = result.body;
      if (body === null) res.end();
      else if (Buffer.isBuffer(body)) res.end(body);
      else {
        pipeline(body, res, (err) => {
          if (err && !res.writableEnded) res.destroy(err);
        });
      }
    } catch (err) {
      const problem = err instanceof WarrantError ? err : new WarrantError('internal_error', undefined, {}, { cause: err });
      if (problem.code === 'internal_error') deps.logger.error({ err: problem.cause ?? err, request_id: requestId }, 'proxied call failed');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const { status, headers, body } = problemResponse(problem, requestId);
      res.writeHead(status, { ...headers, 'warrant-request-id': requestId });
      res.end(body);
    }
  }

  /** Takes the request when it is a proxied call; returns false to leave it to Fastify. */
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url ?? '';
    if (!url.startsWith(PREFIX) || !methods.has(req.method ?? '')) return false;
    void handle(req, res, url);
    return true;
  };
}
