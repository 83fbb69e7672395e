// What an upstream answer means for the proxy's retry rules (DESIGN.md, "Retry rules of the
// proxy"): an auth failure (refresh once, retry once), a scope failure (`scope_insufficient`),
// or an answer to pass on. Providers add body-level patterns to the plain status rules: Slack
// says "token expired" with `200 {"ok":false,"error":"token_expired"}`, Atlassian says "wrong
// scope" with a 401.

import type { Provider, ResponsePattern } from '../providers/schema.ts';
import { firstScopeAt, jsonValuesAt } from '../providers/index.ts';

export interface UpstreamAnswer {
  status: number;
  /** Response headers; names in any case (Node gives lower case), repeated headers as arrays. */
  headers: Record<string, string | string[] | undefined>;
  /** The parsed JSON body, when the proxy parsed it. */
  json?: unknown;
  /** The raw body text, when the proxy buffered it. */
  text?: string;
}

export type UpstreamClass = { kind: 'auth_failure' } | { kind: 'scope_failure'; requiredScope?: string } | { kind: 'ok' };

export interface BearerChallenge {
  error?: string;
  scope?: string;
  error_description?: string;
  realm?: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The JSON body: `json` when given, else `text` parsed (undefined when it is not JSON). */
function jsonOf(r: UpstreamAnswer): unknown {
  if (r.json !== undefined) return r.json;
  if (r.text === undefined) return undefined;
  try {
    return JSON.parse(r.text);
  } catch {
    return undefined;
  }
}

/** A header's value, names compared case-insensitively, repeated headers joined with ", ". */
export function headerValue(headers: UpstreamAnswer['headers'], name: string): string | undefined {
  const wanted = name.toLowerCase();
  const values: string[] = [];
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== wanted || v === undefined) continue;
    values.push(...(Array.isArray(v) ? v : [v]));
  }
  return values.length ? values.join(', ') : undefined;
}

const hasCriteria = (p: ResponsePattern) =>
  p.status !== undefined || p.json !== undefined || p.header !== undefined || p.body_contains !== undefined || p.accepted_scopes_header !== undefined;

/** Scopes listed in a header (GitHub: `repo, gist`). */
const scopesIn = (value: string | undefined) => (value ?? '').split(/[\s,]+/).filter(Boolean);

/** The scopes an `accepted_scopes_header` pattern says the call needs and the token lacks; undefined when it does not say so. */
function acceptedNotHeld(p: ResponsePattern, r: UpstreamAnswer): string[] | undefined {
  if (p.accepted_scopes_header === undefined) return undefined;
  const accepted = scopesIn(headerValue(r.headers, p.accepted_scopes_header));
  const held = new Set(scopesIn(p.granted_scopes_header === undefined ? undefined : headerValue(r.headers, p.granted_scopes_header)));
  return accepted.length && !accepted.some((s) => held.has(s)) ? accepted : undefined;
}

/**
 * Whether an upstream answer matches a provider pattern. Every member given must match:
 * - `status`: equal to it or to one of the list;
 * - `json`: the body is a JSON object where each key, a path (`error.code`, `errors[].extensions.code`:
 *   json-path.ts), reaches a value equal to the expected one (or one of the list) — scalars
 *   compared strictly, a missing member never matches (not even `null`); with `[]`, any element
 *   reaching such a value is enough;
 * - `header`: name (any case) → substring of the value (case-sensitive);
 * - `body_contains`: substring of the raw body (`text`, or the serialised `json` when only that is known);
 * - `accepted_scopes_header`: that header lists scopes and none is in `granted_scopes_header`'s list.
 * A pattern with none of these members matches nothing (it would otherwise match every answer).
 */
export function matchesPattern(p: ResponsePattern, r: UpstreamAnswer): boolean {
  if (!hasCriteria(p)) return false;
  if (p.status !== undefined && !(Array.isArray(p.status) ? p.status.includes(r.status) : p.status === r.status)) return false;
  if (p.header !== undefined) {
    for (const [name, needle] of Object.entries(p.header)) {
      const value = headerValue(r.headers, name);
      if (value === undefined || !value.includes(needle)) return false;
    }
  }
  if (p.accepted_scopes_header !== undefined && !acceptedNotHeld(p, r)) return false;
  if (p.body_contains !== undefined) {
    const text = r.text ?? (r.json !== undefined ? JSON.stringify(r.json) : undefined);
    if (text === undefined || !text.includes(p.body_contains)) return false;
  }
  if (p.json !== undefined) {
    const body = jsonOf(r);
    if (!isObject(body) && !Array.isArray(body)) return false;
    for (const [path, expected] of Object.entries(p.json)) {
      const options: unknown[] = Array.isArray(expected) ? expected : [expected];
      if (!jsonValuesAt(body, path).some((actual) => options.some((o) => o === actual))) return false;
    }
  }
  return true;
}

// RFC 9110 §11: challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ].
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*/;

export interface Challenge {
  scheme: string;
  params: Map<string, string>;
}

/** Every challenge of a `WWW-Authenticate` value, tolerant of unquoted values and stray commas. */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const isWs = (c: string | undefined) => c === ' ' || c === '\t';
  const skipWs = () => {
    while (isWs(header[i])) i++;
  };
  const readToken = () => {
    const start = i;
    while (i < n && TCHAR.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  const atEndOfElement = (j: number) => {
    while (isWs(header[j])) j++;
    return j >= n || header[j] === ',';
  };
  const readValue = (): string => {
    if (header[i] === '"') {
      i++;
      let out = '';
      while (i < n && header[i] !== '"') {
        if (header[i] === '\\' && i + 1 < n) i++;
        out += header[i++];
      }
      i++; // closing quote (or past the end when unterminated)
      return out;
    }
    const start = i;
    while (i < n && header[i] !== ',') i++;
    return header.slice(start, i).trim();
  };

  let current: Challenge | undefined;
  while (i < n) {
    while (i < n && (isWs(header[i]) || header[i] === ',')) i++;
    if (i >= n) break;
    const tokenStart = i;
    const token = readToken();
    if (token === '') {
      i++; // not a token character: skip it
      continue;
    }
    skipWs();
    if (header[i] === '=' && header[i + 1] !== '=' && !atEndOfElement(i + 1)) {
      // auth-param of the current challenge
      i++;
      skipWs();
      const value = readValue();
      const name = token.toLowerCase();
      if (current && !current.params.has(name)) current.params.set(name, value);
      continue;
    }
    if (header[i] === '=' && current) {
      // `name=` with nothing after it, or token68 padding after a bare token: not a new scheme
      i = tokenStart;
      const m = TOKEN68.exec(header.slice(i));
      i += m ? m[0].length : token.length;
      continue;
    }
    // a new challenge
    current = { scheme: token, params: new Map() };
    challenges.push(current);
    if (atEndOfElement(i)) continue;
    const m = TOKEN68.exec(header.slice(i));
    if (m && atEndOfElement(i + m[0].length)) {
      i += m[0].length; // token68 (credentials-like blob), no params
    }
  }
  return challenges;
}

/**
 * The parameters of the `Bearer` challenge in a `WWW-Authenticate` value (RFC 6750 §3), e.g.
 * `Bearer realm="x", error="insufficient_scope", scope="a b"` → `{ realm, error, scope }`.
 * Several challenges may be present (`Basic realm="x", Bearer error=…`); the first Bearer one with
 * an `error` wins, else the first Bearer one. Unquoted values are accepted. `{}` when none.
 */
export function parseBearerChallenge(wwwAuthenticate: string | undefined): BearerChallenge {
  if (!wwwAuthenticate) return {};
  const bearers = parseChallenges(wwwAuthenticate).filter((c) => c.scheme.toLowerCase() === 'bearer');
  const chosen = bearers.find((c) => c.params.has('error')) ?? bearers[0];
  if (!chosen) return {};
  const out: BearerChallenge = {};
  for (const key of ['error', 'scope', 'error_description', 'realm'] as const) {
    const value = chosen.params.get(key);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/**
 * Classifies an upstream answer, in this order:
 * 1. a `scope_failures` pattern matches → scope failure, `requiredScope` from the pattern's
 *    `required_scope_field` path into the JSON body (the first string or string list it reaches), else from a Bearer challenge's `scope`
 *    (checked first because some providers — Atlassian, Dropbox — answer a scope mismatch with a
 *    401 that must not trigger a refresh);
 * 2. a 401 or 403 whose Bearer challenge says `error="insufficient_scope"` → scope failure with
 *    the challenge's `scope` (RFC 6750 §3.1: a new token would not help);
 * 3. an `auth_failures` pattern matches → auth failure (Slack's `200 {"ok":false,…}`, Figma's 403);
 * 4. a 401 → auth failure;
 * 5. anything else → ok (passed on as is).
 */
export function classifyUpstream(provider: Pick<Provider, 'auth_failures' | 'scope_failures'>, r: UpstreamAnswer): UpstreamClass {
  const challenge = r.status === 401 || r.status === 403 ? parseBearerChallenge(headerValue(r.headers, 'www-authenticate')) : {};
  const scopePattern = (provider.scope_failures ?? []).find((p) => matchesPattern(p, r));
  if (scopePattern) {
    const requiredScope =
      (scopePattern.required_scope_field !== undefined ? firstScopeAt(jsonOf(r), scopePattern.required_scope_field) : undefined) ??
      acceptedNotHeld(scopePattern, r)?.join(' ') ??
      (challenge.scope || undefined);
    return requiredScope === undefined ? { kind: 'scope_failure' } : { kind: 'scope_failure', requiredScope };
  }
  if (challenge.error === 'insufficient_scope') {
    return challenge.scope ? { kind: 'scope_failure', requiredScope: challenge.scope } : { kind: 'scope_failure' };
  }
  if ((provider.auth_failures ?? []).some((p) => matchesPattern(p, r))) return { kind: 'auth_failure' };
  if (r.status === 401) return { kind: 'auth_failure' };
  return { kind: 'ok' };
}

const patternNeedsBody = (p: ResponsePattern) => p.json !== undefined || p.body_contains !== undefined || p.required_scope_field !== undefined;
const patternMayMatchStatus = (p: ResponsePattern, status: number) =>
  p.status === undefined || (Array.isArray(p.status) ? p.status.includes(status) : p.status === status);

/**
 * Whether classifying needs the response body: some pattern has `json`, `body_contains` or
 * `required_scope_field`. With `status`, only the patterns that could match that status count,
 * so the proxy buffers a body only when it could change the verdict (e.g. Slack: only 200s).
 */
export function needsBody(provider: Pick<Provider, 'auth_failures' | 'scope_failures'>, status?: number): boolean {
  return [...(provider.auth_failures ?? []), ...(provider.scope_failures ?? [])].some(
    (p) => patternNeedsBody(p) && (status === undefined || patternMayMatchStatus(p, status)),
  );
}
