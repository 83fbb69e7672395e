import { UnknownProblemError, UpstreamHttpError } from './errors.js';
import { isProblemContentType, parseProblem } from './problem.js';
import { isReplayable, retryRefreshUnavailable } from './retry.js';

export interface WarrantOptions {
  /** Warrant's base URL. Default: `WARRANT_URL`, else `http://127.0.0.1:7070`. */
  url?: string;
  /** The agent key (`wrt_…`). Default: `WARRANT_AGENT_KEY`. */
  apiKey?: string;
  /** Default: the platform's `fetch`. */
  fetch?: typeof fetch;
  /** Per request, until Warrant's answer headers arrive (ms). Default 30,000. */
  timeoutMs?: number;
  /** How long to keep retrying a call answered `refresh_unavailable`, in all (ms). Default 30,000; 0 never waits. */
  refreshWaitMs?: number;
}

/** `GET /v1/connections/{id}/token`: the connection's current access token (never a refresh token). */
export interface ExportedToken {
  connection: string;
  accessToken: string;
  tokenType: 'Bearer';
  /** Null for a token the provider issues without an expiry. */
  expiresAt: Date | null;
}

/** `POST /v1/connections/{id}/lease`: the token is good until `expiresAt`. */
export interface Lease {
  connection: string;
  /** Null for a token the provider issues without an expiry. */
  expiresAt: Date | null;
  /** Whether Warrant refreshed the token to answer. */
  refreshed: boolean;
  /** False when the provider's tokens live shorter than asked: lease again before `expiresAt`. */
  coversMinTtl: boolean;
  /** Only when the agent's grant allows token export. */
  accessToken?: string;
}

const DEFAULT_URL = 'http://127.0.0.1:7070';
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_REFRESH_WAIT_MS = 30_000;

/** An environment variable, where the runtime has them and lets us read them. */
function env(name: string): string | undefined {
  try {
    const g = globalThis as { process?: { env?: Record<string, string | undefined> }; Deno?: { env?: { get(n: string): string | undefined } } };
    return g.process?.env?.[name] || g.Deno?.env?.get(name) || undefined;
  } catch {
    return undefined; // Deno without --allow-env
  }
}

/** Aborts when any of `signals` does. */
function anySignal(signals: AbortSignal[]): AbortSignal {
  const any = (AbortSignal as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (any) return any.call(AbortSignal, signals);
  const controller = new AbortController();
  for (const s of signals) {
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    s.addEventListener('abort', () => controller.abort(s.reason), { once: true });
  }
  return controller.signal;
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new TypeError(`${name} must be a finite number of milliseconds, 0 or more`);
  return value;
}

const dateOf = (iso: unknown): Date | null => (typeof iso === 'string' ? new Date(iso) : null);

/**
 * A client for Warrant's agent API: calls through the proxy, token export and leases.
 * Warrant's own refusals throw a typed `WarrantError`; upstream answers come back as they are.
 */
export class Warrant {
  /** Warrant's base URL, without a trailing slash. */
  readonly url: string;
  readonly #apiKey: string;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #refreshWaitMs: number;

  constructor(options: WarrantOptions = {}) {
    const url = options.url ?? env('WARRANT_URL') ?? DEFAULT_URL;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new TypeError('url must be an absolute http(s) URL');
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new TypeError('url must be an absolute http(s) URL');
    this.url = url.replace(/\/+$/, '');
    const apiKey = options.apiKey ?? env('WARRANT_AGENT_KEY');
    if (!apiKey) throw new TypeError('no agent key: pass apiKey or set WARRANT_AGENT_KEY');
    this.#apiKey = apiKey;
    // Called through globalThis: some runtimes refuse a fetch detached from it.
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#timeoutMs = nonNegative('timeoutMs', options.timeoutMs ?? DEFAULT_TIMEOUT_MS) || DEFAULT_TIMEOUT_MS;
    this.#refreshWaitMs = nonNegative('refreshWaitMs', options.refreshWaitMs ?? DEFAULT_REFRESH_WAIT_MS);
  }

  /**
   * `ANY /v1/proxy/{connection}/{path}`: the upstream's answer, whatever its status. Warrant's own
   * problems throw (`PolicyDeniedError`, `ReauthRequiredError`, …). On `refresh_unavailable` the
   * call is sent again after `retryAfter`, within `refreshWaitMs`, if its body can be sent twice
   * (none, a string, bytes, `URLSearchParams`, a `Blob`); a streamed body throws at once.
   */
  async fetch(connection: string, path: string, init: RequestInit = {}): Promise<Response> {
    const target = `${this.url}/v1/proxy/${segment(connection)}/${path.startsWith('/') ? path.slice(1) : path}`;
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${this.#apiKey}`);
    const streamed = typeof ReadableStream !== 'undefined' && init.body instanceof ReadableStream;
    // A streamed request body needs half duplex in fetch implementations that follow the spec.
    const request = { ...init, headers, ...(streamed && !('duplex' in init) ? { duplex: 'half' } : {}) } as RequestInit;
    return retryRefreshUnavailable(
      async () => {
        const res = await this.#send(target, request);
        if (!isProblemContentType(res.headers.get('content-type'))) return res;
        const problem = parseProblem(res, this.#scrub(await res.clone().text()));
        if (!problem) return res; // the upstream's own problem document: its answer, as it is
        await res.body?.cancel().catch(() => undefined);
        throw problem;
      },
      { waitMs: this.#refreshWaitMs, replayable: isReplayable(init.body), signal: init.signal },
    );
  }

  /**
   * `fetch` for JSON APIs: the parsed body of a 2xx answer (undefined when empty); any other answer
   * of the upstream throws `UpstreamHttpError` with its status and body.
   */
  async json<T = unknown>(connection: string, path: string, init: RequestInit = {}): Promise<T> {
    const headers = new Headers(init.headers);
    if (!headers.has('accept')) headers.set('accept', 'application/json');
    const res = await this.fetch(connection, path, { ...init, headers });
    const text = await res.text();
    const context = { method: (init.method ?? 'GET').toUpperCase(), path, requestId: res.headers.get('warrant-request-id') };
    if (!res.ok) throw new UpstreamHttpError(res.status, text, context);
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new TypeError(`the upstream answered ${res.status} to ${context.method} ${path.split('?')[0]} with a body that is not JSON`);
    }
  }

  /**
   * `GET /v1/connections/{id}/token`: the access token itself, for a library that must hold it
   * (the agent's grant needs `token_export`). `minTtl`: seconds it must still be valid for.
   */
  async token(connection: string, options: { minTtl?: number } = {}): Promise<ExportedToken> {
    const query = options.minTtl === undefined ? '' : `?min_ttl=${encodeURIComponent(String(options.minTtl))}`;
    const body = await this.#call('GET', `/v1/connections/${segment(connection)}/token${query}`);
    return { connection: String(body.connection), accessToken: String(body.access_token), tokenType: 'Bearer', expiresAt: dateOf(body.expires_at) };
  }

  /**
   * `POST /v1/connections/{id}/lease`: makes sure the token outlives a batch of `seconds`,
   * refreshing it now if it would not. `coversMinTtl: false`: lease again before `expiresAt`.
   */
  async lease(connection: string, seconds: number): Promise<Lease> {
    const body = await this.#call('POST', `/v1/connections/${segment(connection)}/lease`, { min_ttl: seconds });
    return {
      connection: String(body.connection),
      expiresAt: dateOf(body.expires_at),
      refreshed: body.refreshed === true,
      coversMinTtl: body.covers_min_ttl === true,
      ...(typeof body.access_token === 'string' ? { accessToken: body.access_token } : {}),
    };
  }

  /** One of Warrant's JSON routes: the body of a 2xx, else the typed error. */
  async #call(method: string, path: string, json?: unknown): Promise<Record<string, unknown>> {
    const headers = new Headers({ authorization: `Bearer ${this.#apiKey}`, accept: 'application/json' });
    if (json !== undefined) headers.set('content-type', 'application/json');
    const init: RequestInit = { method, headers, ...(json !== undefined ? { body: JSON.stringify(json) } : {}) };
    return retryRefreshUnavailable(
      async () => {
        const res = await this.#send(`${this.url}${path}`, init);
        const text = await res.text();
        if (res.ok) {
          try {
            const body: unknown = JSON.parse(text);
            if (typeof body === 'object' && body !== null && !Array.isArray(body)) return body as Record<string, unknown>;
          } catch {
            // an answer that is not Warrant's: below
          }
        }
        throw (
          parseProblem(res, this.#scrub(text)) ??
          new UnknownProblemError({ code: 'unexpected_response', title: `${this.url} answered ${res.status} with something other than Warrant's JSON`, status: res.status }, { status: res.status, headers: res.headers })
        );
      },
      { waitMs: this.#refreshWaitMs, replayable: true },
    );
  }

  /** One request within the timeout (until the answer's headers), and the caller's signal if any. */
  async #send(url: string, init: RequestInit): Promise<Response> {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new DOMException(`Warrant did not answer within ${this.#timeoutMs} ms`, 'TimeoutError')), this.#timeoutMs);
    try {
      return await this.#fetch(url, { ...init, signal: init.signal ? anySignal([init.signal, timeout.signal]) : timeout.signal });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Warrant never echoes the key; should anything in front of it do so, it stops here. */
  #scrub(text: string): string {
    return text.replaceAll(this.#apiKey, '[redacted]');
  }
}

/** A connection id as one path segment. */
function segment(connection: string): string {
  if (typeof connection !== 'string' || connection === '') throw new TypeError('connection must be a non-empty connection id');
  return encodeURIComponent(connection);
}
