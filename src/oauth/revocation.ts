// Revocation requests that are not RFC 7009 (a provider's `revocation` block, schema.ts), and the
// API call that verifies one worked. RFC 7009 itself stays on oauth4webapi (client.ts). Both
// calls are held to the same rules as every IdP call: the URL is the definition's, filled with
// checked params (tokens/clients.ts); plain http only to loopback; no redirect followed; the
// answer read once, bounded in size and time (fetch.ts).

import type * as oauth from 'oauth4webapi';
import type { Provider } from '../providers/index.ts';
import { classifyAnswer, errorCodeOf, IdpFailure, kindOfCode } from './errors.ts';
import { boundedFetch, MAX_ANSWER_BYTES, type BoundedAnswer, type IdpGuard } from './fetch.ts';
import { matchesAnswer, type Answer } from './pattern.ts';

type Shape = NonNullable<Provider['revocation']>;

export interface RevocationTarget {
  provider: Provider;
  shape: Shape;
  url: string;
  clientId: string;
  clientSecret?: string;
  /** Client authentication as at the token endpoint (`auth: client`). */
  clientAuth: () => oauth.ClientAuth;
  as: oauth.AuthorizationServer;
  client: oauth.Client;
  timeoutMs: number;
  /** The SSRF guard of a provider whose endpoints came from remote metadata (fetch.ts). */
  guard?: IdpGuard;
}

const isLoopback = (host: string) => host === 'localhost' || host === '[::1]' || /^127\./.test(host);

/** Plain http would put a token or a client secret on the wire in the clear: only to loopback (tests, the sandbox). */
export function checkScheme(url: string, what: string): URL {
  const u = new URL(url);
  if (u.protocol === 'https:' || (u.protocol === 'http:' && isLoopback(u.hostname))) return u;
  throw new IdpFailure('misconfigured', 'insecure_endpoint', undefined, `the ${what} URL must be https`);
}

const answerOf = (a: BoundedAnswer): Answer => ({ status: a.status, headers: a.headers, json: a.json, text: new TextDecoder().decode(a.bytes) });

const misconfigured = (reason: string) => new IdpFailure('misconfigured', 'unsupported', undefined, `revocation: ${reason}`);

/** The request a `revocation` block describes: method, body, where the token goes, how the client authenticates. */
async function requestFor(t: RevocationTarget, token: string, hint: 'refresh_token' | 'access_token') {
  const { shape } = t;
  const headers = new Headers({ accept: 'application/json' });
  for (const [name, value] of Object.entries(shape.headers ?? {})) headers.set(name, value);
  const members = new URLSearchParams();
  switch (shape.auth) {
    case 'client':
      await t.clientAuth()(t.as, t.client, members, headers);
      break;
    case 'basic':
      // RFC 7617 Basic of the id and secret as they are (GitHub), not RFC 6749 §2.3.1's
      // form-encoded variant that `client` sends: a "." in a client id would become "%2E".
      headers.set('authorization', `Basic ${Buffer.from(`${t.clientId}:${t.clientSecret ?? ''}`).toString('base64')}`);
      break;
    case 'bearer':
      headers.set('authorization', `Bearer ${token}`);
      break;
    case 'api': {
      // Presented as the API takes it (Shopify: X-Shopify-Access-Token); a query token would end up in logs.
      const how = t.provider.token_injection ?? { in: 'header' as const, name: 'Authorization', format: 'Bearer {token}' };
      if (how.in !== 'header') throw misconfigured('auth api needs a token_injection in a header');
      headers.set(how.name, how.format.replaceAll('{token}', token));
      break;
    }
  }
  if (shape.body === 'none') {
    if (shape.auth !== 'bearer' && shape.auth !== 'api') throw misconfigured('with body none, only auth bearer or api sends the token');
    if ([...members.keys()].length) throw misconfigured(`token_auth_method ${t.provider.token_auth_method} puts the client in the body, and body is none`);
    return { method: shape.method, headers };
  }
  if (shape.method === 'GET') throw misconfigured('a GET request has no body: set body none');
  members.set(shape.token_field, token);
  if (shape.body === 'json') {
    headers.set('content-type', 'application/json');
    return { method: shape.method, headers, body: JSON.stringify(Object.fromEntries(members)) };
  }
  // RFC 7009 §2.1; only where the endpoint speaks RFC 7009's `token`.
  if (shape.token_field === 'token') members.set('token_type_hint', hint);
  return { method: shape.method, headers, body: members };
}

/**
 * Sends a revocation in the shape of the provider's `revocation` block and judges the answer:
 * revoked when it matches `success` (default: any 2xx). An answer that does not match is not a
 * revocation, whatever its status (Slack: `200 {"ok": false, "error": "invalid_auth"}`), and
 * fails with the IdP's error code; 5xx, 429 and 408 are transient whatever `success` says.
 */
export async function revokeShaped(t: RevocationTarget, token: string, hint: 'refresh_token' | 'access_token'): Promise<void> {
  const url = checkScheme(t.url, 'revocation');
  const request = await requestFor(t, token, hint);
  const answer = await boundedFetch(url.href, { ...request, signal: AbortSignal.timeout(t.timeoutMs), guard: t.guard });
  const { status } = answer;
  if (status >= 500 || status === 429 || status === 408) throw classifyAnswer(status, answer.headers, answer.json);
  if (answer.overflow) throw new IdpFailure('transient', 'invalid_response', status, `the IdP's answer is larger than ${MAX_ANSWER_BYTES} bytes`);
  const revoked = t.shape.success ? matchesAnswer(t.shape.success, answerOf(answer)) : status >= 200 && status < 300;
  if (revoked) return;
  if (status < 200 || status > 299) throw classifyAnswer(status, answer.headers, answer.json);
  const code = errorCodeOf(answer.json);
  throw new IdpFailure(code ? kindOfCode(code, status) : 'misconfigured', code ?? 'not_revoked', status, `the IdP answered ${status} without revoking${code ? ` (${code})` : ''}`);
}

export type ApiCheck = { outcome: 'refused' | 'accepted' | 'inconclusive'; detail: string; /** The API's answer status, when it answered. */ status?: number };

/**
 * GET `api_base_url` + `verify_path` with the access token, presented as the API expects it
 * (`token_injection`) with the definition's `api_headers`: an auth failure — a 401, or an answer
 * matching the provider's `auth_failures` (Slack's `200 {"ok": false, "error": "invalid_auth"}`)
 * — shows the token is dead. Anything else but a plain success proves nothing either way.
 */
export async function askApiWithToken(
  provider: Provider,
  target: { apiBaseUrl: string; verifyPath: string; apiHeaders: Record<string, string>; timeoutMs: number; guard?: IdpGuard },
  accessToken: string,
): Promise<ApiCheck> {
  let url: URL;
  try {
    url = checkScheme(target.apiBaseUrl, 'API base');
  } catch (err) {
    return { outcome: 'inconclusive', detail: `could not verify: ${(err as Error).message}` };
  }
  url.pathname = url.pathname.replace(/\/+$/, '') + target.verifyPath;
  const headers = new Headers({ accept: 'application/json' });
  for (const [name, value] of Object.entries(target.apiHeaders)) headers.set(name, value);
  const how = provider.token_injection ?? { in: 'header' as const, name: 'Authorization', format: 'Bearer {token}' };
  const presented = how.format.replaceAll('{token}', accessToken);
  if (how.in === 'query') url.searchParams.set(how.name, presented);
  else headers.set(how.name, presented);
  let answer: BoundedAnswer;
  try {
    answer = await boundedFetch(url.href, { method: 'GET', headers, signal: AbortSignal.timeout(target.timeoutMs), guard: target.guard });
  } catch (err) {
    return { outcome: 'inconclusive', detail: `could not verify: the API could not be asked (${(err as IdpFailure).error ?? 'network_error'})` };
  }
  const { status } = answer;
  if (status === 401 || (!answer.overflow && provider.auth_failures.some((p) => matchesAnswer(p, answerOf(answer))))) {
    return { outcome: 'refused', detail: `the API refuses the revoked token (${target.verifyPath} answered ${status})`, status };
  }
  if (status >= 200 && status < 300) return { outcome: 'accepted', detail: `the API still accepts the token (${target.verifyPath} answered ${status})`, status };
  return { outcome: 'inconclusive', detail: `could not verify: ${target.verifyPath} answered ${status}`, status };
}
