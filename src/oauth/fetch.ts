// The transport under every IdP call. oauth4webapi gets its answers through this fetch, which
// reads each answer once, bounded in size and time, and decides everything that is about HTTP
// rather than OAuth: network failures and timeouts, non-2xx answers (classified from status and
// body, see errors.ts), answers too large to be a token response, and the small ways real token
// endpoints differ from RFC 6749 (token-response.ts). oauth4webapi then only ever sees a 200
// that conforms.

import type * as oauth from 'oauth4webapi';
import { fetch as undiciFetch, type Dispatcher } from 'undici';
import { responseScopeSeparator, type Provider } from '../providers/index.ts';
import { classifyAnswer, IdpFailure, transportFailure } from './errors.ts';
import { normaliseTokenResponse, tokenSetOf } from './token-response.ts';

/** No IdP answer Warrant reads is larger; beyond this it is refused without being buffered. */
export const MAX_ANSWER_BYTES = 1 << 20;

export type IdpEndpoint = 'token' | 'revocation' | 'introspection';

/**
 * The SSRF guard of a provider whose endpoints came from a remote server's metadata (schema's
 * `endpoints_untrusted`): its requests go through `dispatcher`, whose connect step resolves the
 * host and fails, with an error whose `code` is `refusedCode`, for an address that is not public
 * and not allowed. Checked on the socket, so a name that resolves elsewhere since registration
 * (DNS rebinding) is refused too. Built in src/tokens/clients.ts.
 */
export interface IdpGuard {
  dispatcher: Dispatcher;
  refusedCode: string;
  /** What allows a refused network (a setting's name), said in the error. */
  allowance: string;
}

/** The guard's refusal in an error's cause chain, with the address refused. */
function refusalOf(err: unknown, code: string): { address?: string } | undefined {
  for (let e = err, depth = 0; e && depth < 4; e = (e as Error).cause, depth++) {
    if ((e as { code?: unknown }).code === code) {
      const address = (e as { address?: unknown }).address;
      return { address: typeof address === 'string' ? address : undefined };
    }
  }
  return undefined;
}

/** Reads at most `limit` bytes of the body (after content decoding); the rest is cancelled, not read. */
export async function readCapped(res: Response, limit: number): Promise<{ bytes: Uint8Array; overflow: boolean }> {
  if (!res.body) return { bytes: new Uint8Array(0), overflow: false };
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > limit) {
    await res.body.cancel().catch(() => {});
    return { bytes: new Uint8Array(0), overflow: true };
  }
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (size + value.byteLength > limit) {
      await reader.cancel().catch(() => {});
      return { bytes: Buffer.concat(chunks), overflow: true };
    }
    size += value.byteLength;
    chunks.push(value);
  }
  return { bytes: Buffer.concat(chunks), overflow: false };
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The answer's headers minus those that described the bytes on the wire, not the bytes we pass on. */
function passedHeaders(received: Headers, contentType?: string): Headers {
  const headers = new Headers(received);
  for (const h of ['content-length', 'content-encoding', 'transfer-encoding']) headers.delete(h);
  if (contentType) headers.set('content-type', contentType);
  return headers;
}

export interface BoundedAnswer {
  status: number;
  headers: Headers;
  bytes: Uint8Array;
  /** The body was larger than MAX_ANSWER_BYTES; `bytes` holds only part of it and `json` is undefined. */
  overflow: boolean;
  /** The body parsed as JSON, undefined when it is not JSON. */
  json: unknown;
}

/**
 * One request to an IdP (or, to verify a revocation, its API): a redirect is never followed, the
 * answer is read once and at most MAX_ANSWER_BYTES of it; `signal` (the call's deadline) bounds
 * the body read too. Network failures and timeouts are thrown as IdpFailure; with a `guard`, an
 * address it refuses is `misconfigured` `address_refused`, and no request was sent.
 */
export async function boundedFetch(
  url: string,
  init: { method: string; headers: Headers; body?: string | URLSearchParams; signal: AbortSignal; guard?: IdpGuard },
): Promise<BoundedAnswer> {
  const { guard } = init;
  try {
    const request = { method: init.method, headers: init.headers, body: init.body, redirect: 'manual' as const, signal: init.signal };
    // The guard's dispatcher is undici's own: it goes with undici's fetch, not the one bundled in Node.
    const res = guard ? ((await undiciFetch(url, { ...request, headers: [...init.headers], dispatcher: guard.dispatcher })) as unknown as Response) : await fetch(url, request);
    const read = await readCapped(res, MAX_ANSWER_BYTES);
    return { status: res.status, headers: res.headers, bytes: read.bytes, overflow: read.overflow, json: read.overflow ? undefined : parseJson(read.bytes) };
  } catch (err) {
    const refused = guard ? refusalOf(err, guard.refusedCode) : undefined;
    if (guard && refused) {
      const what = refused.address ? ` (${refused.address})` : '';
      throw new IdpFailure(
        'misconfigured',
        'address_refused',
        undefined,
        `the IdP endpoint ${new URL(url).host} is at an address that is not public${what}; allow its network with ${guard.allowance} if that is intended`,
      );
    }
    throw transportFailure(err);
  }
}

/**
 * A fetch for oauth4webapi's `customFetch`. On top of bounding the answer: the token endpoint's
 * static headers (Notion-Version), JSON request bodies (Atlassian), `Accept: application/json`
 * and errors sent with status 200 (GitHub), and the token-response reading of token-response.ts
 * (a token set nested in the answer, Slack's `authed_user`; scopes in another member).
 */
export function idpFetch(provider: Provider, endpoint: IdpEndpoint, guard?: IdpGuard) {
  const quirks = endpoint === 'token' ? provider.token_endpoint : undefined;
  return async (url: string, options: oauth.CustomFetchOptions<string, unknown>): Promise<Response> => {
    const headers = new Headers(options.headers as HeadersInit);
    let body = options.body as string | URLSearchParams | undefined;
    const isRefresh = body instanceof URLSearchParams && body.get('grant_type') === 'refresh_token';
    for (const [name, value] of Object.entries(quirks?.headers ?? {})) headers.set(name, value);
    if (quirks?.accept) headers.set('accept', quirks.accept);
    if (quirks?.body === 'json' && body instanceof URLSearchParams) {
      body = JSON.stringify(Object.fromEntries(body));
      headers.set('content-type', 'application/json');
    }
    const answer = await boundedFetch(url, { method: options.method, headers, body, signal: options.signal as AbortSignal, guard });
    const { status, json } = answer;
    if (status < 200 || status > 299) throw classifyAnswer(status, answer.headers, json);
    if (answer.overflow) throw new IdpFailure('transient', 'invalid_response', status, `the IdP's answer is larger than ${MAX_ANSWER_BYTES} bytes`);
    // RFC 7009 §2.2: the body of a successful revocation is ignored; some IdPs answer 204.
    if (endpoint === 'revocation') return new Response(null, { status: 200, headers: passedHeaders(answer.headers) });
    if (endpoint === 'introspection') return new Response(new TextDecoder().decode(answer.bytes), { status: 200, headers: passedHeaders(answer.headers) });
    // Parsed whatever the content-type says, as oauth4webapi itself would: some IdPs send JSON as text/plain.
    if (!isObject(json)) throw new IdpFailure('transient', 'invalid_response', status, 'the token endpoint answered with a body that is not a JSON object');
    if (typeof json.error === 'string' && (quirks?.errors_with_200 || json.access_token === undefined)) throw classifyAnswer(400, answer.headers, json);
    const normalised = normaliseTokenResponse(tokenSetOf(json, provider.token_response, isRefresh), responseScopeSeparator(provider));
    if (!normalised.ok) {
      throw new IdpFailure('transient', 'invalid_response', status, `the token response's ${normalised.field} ${normalised.reason}`);
    }
    return new Response(JSON.stringify(normalised.json), { status: 200, headers: passedHeaders(answer.headers, 'application/json') });
  };
}
