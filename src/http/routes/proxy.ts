import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Forwarder, ProxyAgent } from '../../proxy/index.ts';
import { ClientGone } from '../../proxy/client-gone.ts';
import { WarrantError } from '../../errors/index.ts';
import type { AuditQueue } from '../../events/audit-queue.ts';
import { rateLimited, type Limits, type Permit } from '../../limits/index.ts';
import { GuardedBody, bodyTooLarge, type BodyLimits } from '../../limits/body.ts';
import { defaults } from '../../config/index.ts';
import { asProblem, problemResponse } from '../problems.ts';
import { bearerFrom } from '../auth.ts';
import { newRequestId } from '../request-id.ts';
import type { Metrics } from '../metrics.ts';

const methods = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const PREFIX = '/v1/proxy/';

export const defaultBodyLimits: BodyLimits = { limitBytes: defaults.proxyBodyLimitBytes, idleTimeoutMs: defaults.proxyIdleTimeoutMs };

/**
 * `ANY /v1/proxy/{connection}/{path…}`, served on the raw node:http request ahead of Fastify's
 * router (the app's serverFactory hands these requests here). The proxy is the hottest path:
 * it needs no body parsing, no schema, no per-request child logger, so it skips the framework's
 * request pipeline and keeps Warrant's own pieces: request id, problem answers, metrics, error
 * logs. The path is taken from the raw URL, so nothing is decoded before the SSRF check, and the
 * request body is the raw stream — bounded here, since Fastify's body limit and timeouts do not
 * apply: a declared length over the limit is refused before anything else, a body that grows past
 * it or stops arriving fails the call (413 / 408), and a refusal sent before the body was read
 * closes the connection rather than wait for the rest of it.
 *
 * Once the agent is known, its call must pass the limits (rate and concurrency, per agent and per
 * granted connection) and the agent must have audit share left, all before the forwarder reserves
 * an audit slot for it; the permit is released when the answer is over.
 */
export function rawProxyRoute(deps: {
  forwarder: Forwarder;
  authenticate(bearer: string | undefined): Promise<ProxyAgent>;
  logger: Logger;
  metrics: Metrics;
  limits?: Pick<Limits, 'admit'>;
  auditQueue?: Pick<AuditQueue, 'hasShareLeft' | 'perKeyCapacity'>;
  body?: Partial<BodyLimits>;
}) {
  const bodyLimits: BodyLimits = { ...defaultBodyLimits, ...deps.body };

  async function handle(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const requestId = newRequestId();
    const started = performance.now();
    res.once('finish', () =>
      deps.metrics.httpRequests.observe({ method: req.method!, route: '/v1/proxy/:connection/*', status: String(res.statusCode) }, (performance.now() - started) / 1000),
    );
    let body: GuardedBody | undefined;
    try {
      const declared = req.headers['content-length'];
      if (declared !== undefined && Number(declared) > bodyLimits.limitBytes) throw bodyTooLarge(bodyLimits.limitBytes);
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
      if (deps.limits) {
        const admitting = admit(deps.limits, res, agent, connectionId);
        if (admitting) await admitting;
      }
      if (deps.auditQueue && !deps.auditQueue.hasShareLeft(agent.id)) {
        throw rateLimited('agent_audit_share', 1, `this agent already holds its share of the audit queue (${deps.auditQueue.perKeyCapacity} calls in flight)`);
      }
      // GET and HEAD bodies are never forwarded: left to Node, which discards them after the answer.
      const hasBody = req.headers['transfer-encoding'] !== undefined || (declared !== undefined && declared !== '0');
      if (hasBody && req.method !== 'GET' && req.method !== 'HEAD') {
        const guarded = (body = new GuardedBody(req, bodyLimits));
        // Whatever was not read by then goes back to Node to discard.
        res.once('finish', () => guarded.destroy());
      }
      const clientGone = new ClientGone();
      res.once('close', () => {
        if (!res.writableFinished) clientGone.leave();
      });
      const result = await deps.forwarder.forward({
        requestId,
        agent,
        connectionId,
        method: req.method!,
        rawPath: slash < 0 ? '' : pathPart.slice(slash),
        rawQuery: q < 0 ? '' : url.slice(q + 1),
        headers: req.headers,
        body,
        clientIp: req.socket.remoteAddress,
        clientGone,
      });
      res.writeHead(result.status, result.headers);
      const out = result.body;
      if (out === null) res.end();
      else if (Buffer.isBuffer(out)) res.end(out);
      else {
        // pipe(), not pipeline(): pipeline makes and aborts an AbortController per call (~50 µs of
        // DOMException work in the profile). The two directions pipeline covered, by hand:
        out.once('error', (err) => {
          if (!res.writableEnded) res.destroy(err);
        });
        res.once('close', () => {
          if (!out.readableEnded) out.destroy();
        });
        out.pipe(res);
      }
    } catch (err) {
      // A body that failed (too large, idle) is the reason, whatever the reader made of it.
      const problem = body?.failure ?? asProblem(err);
      if (problem.code === 'internal_error' || problem.code === 'unavailable') deps.logger.error({ err: problem.cause ?? err, request_id: requestId }, 'proxied call failed');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const { status, headers, body: text } = problemResponse(problem, requestId);
      // The rest of an unread body cannot be trusted to end soon: answer, then close.
      res.writeHead(status, { ...headers, 'warrant-request-id': requestId, ...(req.complete ? {} : { connection: 'close' }) });
      res.end(text);
    }
  }

  /** Passes the limits or throws `rate_limited`; the permit is given back when the answer is over. */
  function admit(limits: Pick<Limits, 'admit'>, res: ServerResponse, agent: ProxyAgent, connectionId: string): Promise<void> | undefined {
    // A connection is charged only for an agent that holds a grant on it.
    const granted = agent.grants.some((g) => g.connection_id === connectionId);
    const pending = limits.admit(agent.id, granted ? connectionId : undefined);
    if (pending instanceof Promise) return pending.then((permit) => holdUntilClosed(res, permit));
    holdUntilClosed(res, pending);
    return undefined;
  }

  function holdUntilClosed(res: ServerResponse, permit: Permit): void {
    if (res.closed) permit.release();
    else res.once('close', () => permit.release());
  }

  /** Takes the request when it is a proxied call; returns false to leave it to Fastify. */
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url ?? '';
    if (!url.startsWith(PREFIX) || !methods.has(req.method ?? '')) return false;
    void handle(req, res, url);
    return true;
  };
}
