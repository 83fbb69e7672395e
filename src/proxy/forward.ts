import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { WarrantError, isWarrantError } from '../errors/index.ts';
import type { Provider } from '../providers/index.ts';
import type { Store } from '../store/index.ts';
import type { AuditQueue } from '../events/audit-queue.ts';
import type { AuditHmac } from '../events/audit-hmac.ts';
import type { TokenService } from '../tokens/index.ts';
import { API_HOST_HEADER, routeCall } from './hosts.ts';
import { rewriteLocation } from './location.ts';
import { createMetaCache, type MetaChanges } from './meta-cache.ts';
import { findGrantedScope } from './policy.ts';
import { classifyUpstream, needsBody } from './detect.ts';
import { discard, readUpTo } from './body.ts';
import { agentResponseHeaders, upstreamRequestHeaders } from './headers.ts';
import { scrubBuffer, scrubText } from './scrub.ts';
import { isTimeout, mayRetry, retryAfterSeconds, retryDelayMs, retryableError, retryableStatus, type RetrySettings } from './retry.ts';
import type { Upstreams } from './upstream.ts';
import type { ClientGone } from './client-gone.ts';
import { memoize } from '../util/memo.ts';

/** The slice of an authenticated agent the proxy needs. */
export interface ProxyAgent {
  id: string;
  grants: readonly { connection_id: string; scopes: readonly string[]; token_export: boolean }[];
}

export interface ProxyRequest {
  requestId: string;
  agent: ProxyAgent;
  connectionId: string;
  method: string;
  /** The path after `/v1/proxy/{connection}`, as received (still percent-encoded). */
  rawPath: string;
  rawQuery: string;
  headers: IncomingHttpHeaders;
  /** The request body stream; undefined when the request has none. */
  body?: Readable;
  /** The caller's address (the socket's peer): audited only as its keyed HMAC (`client_ip`). */
  clientIp?: string;
  /** Fires when the agent goes away before the answer: the upstream call is abandoned. */
  clientGone?: ClientGone;
}

export interface ProxyResponse {
  status: number;
  headers: Record<string, string | string[]>;
  body: Readable | Buffer | null;
}

export interface ProxySettings {
  /** Request bodies up to this size are buffered so they can be replayed on retry; larger ones stream once. */
  replayLimitBytes: number;
  /** Upstream answers up to this size are buffered when their body must be inspected. */
  inspectLimitBytes: number;
  /** Overall deadline for one proxied call, retries included. */
  deadlineMs: number;
  /** Time to the upstream's response headers, per attempt. */
  headersTimeoutMs: number;
  /** Idle time between body chunks. */
  bodyTimeoutMs: number;
  retry: RetrySettings;
}

export const defaultProxySettings: ProxySettings = {
  replayLimitBytes: 1 << 20,
  inspectLimitBytes: 64 << 10,
  deadlineMs: 30_000,
  headersTimeoutMs: 15_000,
  bodyTimeoutMs: 30_000,
  retry: { maxRetries: 3, baseDelayMs: 100, maxDelayMs: 5_000 },
};

/** What one call did, for its audit entry. */
interface Outcome {
  status: number;
  retries: number;
  refreshed: boolean;
  path: string;
  host?: string;
  scope?: string;
  code?: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function injectToken(provider: Provider, url: URL, headers: Record<string, string | string[]>, token: string): void {
  const how = provider.token_injection ?? { in: 'header' as const, name: 'Authorization', format: 'Bearer {token}' };
  const value = how.format.replaceAll('{token}', token);
  if (how.in === 'query') url.searchParams.set(how.name, value);
  else headers[how.name.toLowerCase()] = value;
}

export function createForwarder(deps: {
  store: Store;
  catalog: Map<string, Provider>;
  tokens: TokenService;
  upstreams: Upstreams;
  auditQueue: AuditQueue;
  logger: Logger;
  /** Keys `client_ip` in the audit (events/audit-hmac.ts); without it the address is not recorded. */
  auditHmac?: AuditHmac;
  settings?: Partial<ProxySettings>;
  /**
   * Without `changes`: how long connection metadata is cached, the bound on a change reaching the
   * proxy. With it: the longest an entry is served before it is read again (default 60 s).
   */
  metaTtlMs?: number;
  /** Connection changes from every instance (agents/invalidation.ts): cached metadata lives until its id is announced. */
  changes?: MetaChanges;
  /** Most connections whose metadata is held; the oldest goes first. */
  metaMaxEntries?: number;
}) {
  const settings = { ...defaultProxySettings, ...deps.settings };
  const meta = createMetaCache({
    store: deps.store,
    catalog: deps.catalog,
    changes: deps.changes,
    ttlMs: deps.metaTtlMs,
    maxEntries: deps.metaMaxEntries,
  });

  // An HMAC per call (a key import and two SHA-256 passes) for a value that repeats: agents call
  // from few addresses.
  const auditHmac = deps.auditHmac;
  const clientIpMac = auditHmac ? memoize(1024, (ip) => auditHmac('client_ip', ip)) : undefined;

  async function forward(req: ProxyRequest): Promise<ProxyResponse> {
    const started = performance.now();
    const reservation = deps.auditQueue.reserve(req.agent.id);
    if (!reservation) throw new WarrantError('unavailable', 'the audit log cannot be written right now; Warrant refuses calls it cannot record');
    const outcome: Outcome = { status: 0, retries: 0, refreshed: false, path: '' };
    try {
      const res = await attempt(req, outcome);
      outcome.status = res.status;
      return res;
    } catch (err) {
      // 499: the agent closed the connection first (nginx's convention); nobody reads the answer.
      outcome.status = req.clientGone?.gone ? 499 : isWarrantError(err) ? err.status : 500;
      outcome.code = req.clientGone?.gone ? 'client_closed' : isWarrantError(err) ? err.code : 'internal_error';
      throw err;
    } finally {
      reservation.commit({
        type: 'proxy.call',
        actor: `agent:${req.agent.id}`,
        subject: `connection:${req.connectionId}`,
        data: {
          method: req.method,
          path: outcome.path,
          ...(outcome.host !== undefined ? { host: outcome.host } : {}),
          scope: outcome.scope ?? null,
          status: outcome.status,
          code: outcome.code ?? null,
          retries: outcome.retries,
          refreshed: outcome.refreshed,
          duration_ms: Math.round((performance.now() - started) * 10) / 10,
          request_id: req.requestId,
          ...(req.clientIp && clientIpMac ? { client_ip: clientIpMac(req.clientIp) } : {}),
        },
      });
    }
  }

  async function attempt(req: ProxyRequest, outcome: Outcome): Promise<ProxyResponse> {
    const grant = req.agent.grants.find((g) => g.connection_id === req.connectionId);
    if (!grant) throw new WarrantError('policy_denied', `this agent has no grant for connection ${req.connectionId}`, { connection: req.connectionId });
    const { provider, bases, apiHeaders } = await meta.get(req.connectionId);
    const { url: target, path: relative, host } = routeCall(bases, req.rawPath, req.rawQuery, req.headers[API_HOST_HEADER]);
    outcome.path = relative;
    outcome.host = host;
    const method = req.method.toUpperCase();
    const scope = findGrantedScope(provider.scopes, grant.scopes, method, relative, target.search, host);
    if (!scope) {
      throw new WarrantError('policy_denied', `none of this agent's scopes on ${req.connectionId} allows ${method} ${relative}${host ? ` on its ${host} API host` : ''}`, {
        connection: req.connectionId,
        method,
        path: relative,
        ...(host ? { api_host: host } : {}),
        granted_scopes: grant.scopes,
      });
    }
    outcome.scope = scope;
    if (apiHeaders instanceof WarrantError) throw apiHeaders;

    // Buffer small bodies so a retry can send them again; a large one streams once, no retries.
    let body: Buffer | Readable | null = null;
    let replayable = true;
    if (req.body && method !== 'GET' && method !== 'HEAD') {
      const read = await readUpTo(req.body, settings.replayLimitBytes);
      if (read.complete) body = read.buffer.length ? read.buffer : null;
      else {
        body = read.stream;
        replayable = false;
      }
    }
    // The definition's headers replace the agent's of the same name.
    const baseHeaders = Object.assign(upstreamRequestHeaders(req.headers), apiHeaders);
    const retryAllowed = replayable && mayRetry(method, baseHeaders);
    // The deadline is checked between attempts; each attempt is bounded by undici's own
    // headers/body timeouts (cheaper than an AbortSignal per call on the hot path).
    const deadlineAt = Date.now() + settings.deadlineMs;
    const left = () => deadlineAt - Date.now();
    const pool = deps.upstreams.pool(target.origin);

    let token = await deps.tokens.getFreshToken(req.connectionId, { actor: `agent:${req.agent.id}` });
    if (token.refreshed) outcome.refreshed = true;
    let authRetried = false;
    let lastRetryAfter: number | undefined;

    for (;;) {
      if (req.clientGone?.gone) throw new WarrantError('upstream_unavailable', 'the agent closed the connection before the answer');
      const url = provider.token_injection?.in === 'query' ? new URL(target) : target;
      const headers = { ...baseHeaders };
      injectToken(provider, url, headers, token.accessToken);
      let res: Dispatcher.ResponseData;
      try {
        res = await pool.request({
          path: url.pathname + url.search,
          method: method as Dispatcher.HttpMethod,
          headers,
          body,
          headersTimeout: Math.max(1, Math.min(settings.headersTimeoutMs, left())),
          bodyTimeout: settings.bodyTimeoutMs,
          signal: req.clientGone,
        });
      } catch (err) {
        // The agent's streamed body failed (too large, idle): that is the outcome, not the upstream.
        if (isWarrantError(err)) throw err;
        if (retryAllowed && retryableError(err) && outcome.retries < settings.retry.maxRetries && left() > 0) {
          outcome.retries++;
          await waitOrGiveUp(retryDelayMs(outcome.retries, settings.retry), left());
          continue;
        }
        const timedOut = isTimeout(err) || left() <= 0;
        outcome.code = 'upstream_unavailable';
        throw new WarrantError(
          'upstream_unavailable',
          timedOut ? `${provider.id} did not answer in time` : `${provider.id} could not be reached (${(err as { code?: string }).code ?? 'network error'})`,
          { retry_after: 1, retries: outcome.retries },
          { cause: err, status: timedOut ? 504 : 502 },
        );
      }

      const status = res.statusCode;
      const upstreamHeaders = res.headers as Record<string, string | string[] | undefined>;
      const contentType = String(upstreamHeaders['content-type'] ?? '');
      // Error answers are read (up to the inspect limit) so an echoed credential can be scrubbed.
      const mustInspect = status >= 400 || (needsBody(provider, status) && /json/i.test(contentType));
      let bodyOut: Readable | Buffer = res.body;
      let text: string | undefined;
      if (mustInspect) {
        const read = await readUpTo(res.body, settings.inspectLimitBytes, Number(upstreamHeaders['content-length'] ?? NaN));
        if (read.complete) {
          bodyOut = read.buffer;
          text = read.buffer.toString('utf8');
        } else bodyOut = read.stream;
      }
      let json: unknown;
      if (text !== undefined && /json/i.test(contentType)) {
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
      }
      const verdict = classifyUpstream(provider, { status, headers: upstreamHeaders, json, text });

      if (verdict.kind === 'auth_failure') {
        if (!authRetried) {
          authRetried = true;
          // 401 means the upstream did not act on the request, so even a non-idempotent one is
          // safe to send again, if we still hold its body. Either way the token is replaced.
          const rejected = token.accessToken;
          token = await deps.tokens.getFreshToken(req.connectionId, { rejectedToken: rejected, actor: `agent:${req.agent.id}` });
          outcome.refreshed = true;
          if (replayable) {
            outcome.retries++;
            await discard(bodyOut instanceof Readable ? bodyOut : undefined);
            continue;
          }
        }
        if (token.stale) {
          // The IdP is failing and the last token was refused: only the IdP's return heals this,
          // so the agent is told to wait, not that the grant is broken.
          await discard(bodyOut instanceof Readable ? bodyOut : undefined);
          outcome.code = 'refresh_unavailable';
          throw new WarrantError(
            'refresh_unavailable',
            `the identity provider of ${provider.id} is failing and ${provider.id} refused the last token of connection ${req.connectionId}`,
            { connection: req.connectionId, retry_after: 2 },
          );
        }
        outcome.code = 'upstream_auth_failed';
        return problemFromUpstream(req, status, bodyOut, text, outcome, provider.id, token.accessToken);
      }

      if (verdict.kind === 'scope_failure') {
        await discard(bodyOut instanceof Readable ? bodyOut : undefined);
        outcome.code = 'scope_insufficient';
        throw new WarrantError(
          'scope_insufficient',
          `${provider.id} refused ${method} ${relative} for a missing scope${verdict.requiredScope ? ` (${verdict.requiredScope})` : ''}`,
          { ...(verdict.requiredScope ? { required_scope: verdict.requiredScope } : {}), granted_scopes: grant.scopes, connection: req.connectionId },
        );
      }

      if (retryableStatus(status)) {
        lastRetryAfter = retryAfterSeconds(upstreamHeaders['retry-after']);
        if (retryAllowed && outcome.retries < settings.retry.maxRetries) {
          const delay = retryDelayMs(outcome.retries + 1, settings.retry, lastRetryAfter);
          if (delay < left()) {
            outcome.retries++;
            await discard(bodyOut instanceof Readable ? bodyOut : undefined);
            await waitOrGiveUp(delay, left());
            continue;
          }
        }
        if (retryAllowed) {
          await discard(bodyOut instanceof Readable ? bodyOut : undefined);
          const code = status === 429 ? 'upstream_rate_limited' : 'upstream_unavailable';
          outcome.code = code;
          throw new WarrantError(
            code,
            `${provider.id} answered ${status} ${outcome.retries ? `after ${outcome.retries} retries` : 'and waiting longer would pass the deadline'}`,
            { retry_after: lastRetryAfter ?? 1, retries: outcome.retries, upstream_status: status },
            { status: code === 'upstream_rate_limited' ? 429 : status === 504 ? 504 : 502 },
          );
        }
        // Not ours to retry (a POST without Idempotency-Key): the upstream's answer, as-is.
      }

      const headersOut = agentResponseHeaders(upstreamHeaders);
      if (Buffer.isBuffer(bodyOut)) {
        bodyOut = scrubBuffer(bodyOut, token.accessToken);
        headersOut['content-length'] = String(bodyOut.length);
      }
      rewriteLocation(headersOut, bases, req.connectionId, token.accessToken);
      return { status, headers: Object.assign(headersOut, trace(req, outcome)), body: method === 'HEAD' ? null : bodyOut };
    }
  }

  async function waitOrGiveUp(ms: number, remainingMs: number): Promise<void> {
    if (ms >= remainingMs) {
      throw new WarrantError('upstream_unavailable', 'the retries did not finish before the deadline', { retry_after: 1 }, { status: 504 });
    }
    await sleep(ms);
  }

  function trace(req: ProxyRequest, outcome: { retries: number; refreshed: boolean }): Record<string, string> {
    return {
      'warrant-request-id': req.requestId,
      'warrant-retries': String(outcome.retries),
      'warrant-token-refreshed': String(outcome.refreshed),
    };
  }

  /** A fresh token refused again: the upstream's answer, typed, with its body for the agent to read. */
  async function problemFromUpstream(
    req: ProxyRequest,
    status: number,
    body: Readable | Buffer,
    text: string | undefined,
    outcome: { retries: number; refreshed: boolean },
    providerId: string,
    injected: string,
  ): Promise<ProxyResponse> {
    if (text === undefined && body instanceof Readable) {
      const read = await readUpTo(body, settings.inspectLimitBytes);
      if (read.complete) text = read.buffer.toString('utf8');
      else await discard(read.stream);
    } else await discard(body instanceof Readable ? body : undefined);
    const err = new WarrantError(
      'upstream_auth_failed',
      `${providerId} refused a freshly refreshed token; the grant itself is still accepted by the identity provider`,
      { upstream_status: status, ...(text !== undefined ? { upstream_body: scrubText(text, injected).slice(0, 4096) } : {}) },
      { status: status >= 400 ? status : 401 },
    );
    return {
      status: err.status,
      headers: { 'content-type': 'application/problem+json', ...trace(req, outcome) },
      body: Buffer.from(JSON.stringify(err.toProblem(req.requestId))),
    };
  }

  return { forward };
}

export type Forwarder = ReturnType<typeof createForwarder>;
