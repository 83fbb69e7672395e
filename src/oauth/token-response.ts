// What Warrant accepts from a token endpoint's 2xx answer (RFC 6749 §5.1), and how it smooths
// over what real IdPs send. The rule: whatever makes the token itself unusable or unclear
// (`access_token`, `refresh_token`) refuses the whole answer; metadata that is malformed
// (`expires_in`, `token_type`, `scope`) is normalised rather than refused, because refusing a
// 200 from an IdP that rotates refresh tokens would throw away the only valid refresh token.
// docs/token-lifecycle.md ("What Warrant accepts from a token endpoint") is the reader's copy.

/** An `expires_in` above this (seconds, one year) is read as this: `10^12` must not mean "never refresh". */
export const MAX_EXPIRES_IN_SECONDS = 365 * 24 * 3600;

// A token goes into an HTTP header and a log-safe vault; a control character there is an attack or garbage.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const NUMERIC = /^\s*\d+(\.\d+)?\s*$/;

export type Normalised = { ok: true; json: Record<string, unknown> } | { ok: false; field: string; reason: string };

const isToken = (v: unknown): v is string => typeof v === 'string' && v.trim().length > 0 && !CONTROL.test(v);

/**
 * `expires_in` as a lifetime Warrant can plan with, or undefined ("unknown": the provider's
 * `token_lifetime`, then introspection, decide). A string of digits is read as a number (several
 * IdPs send `"3600"`); anything else that is not a positive finite number is unknown; a lifetime
 * under one second is unknown too (`0` is used by some IdPs for "does not expire", by others for
 * "already expired": neither can be planned with); above a year it is clamped to a year.
 */
export function normaliseExpiresIn(value: unknown): number | undefined {
  let n: number | undefined;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && NUMERIC.test(value)) n = Number(value);
  if (n === undefined || !Number.isFinite(n) || n < 1) return undefined;
  return Math.min(Math.floor(n), MAX_EXPIRES_IN_SECONDS);
}

/** The members of an RFC 6749 §5.1 token set (and the ID token that may come with it). */
const TOKEN_SET_MEMBERS = ['access_token', 'token_type', 'expires_in', 'refresh_token', 'scope', 'id_token'] as const;
const SECRET_MEMBERS = ['access_token', 'refresh_token', 'id_token'];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const without = (o: Record<string, unknown>, keys: readonly string[]) => Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));

/**
 * A token endpoint answer as RFC 6749 §5.1 shapes it, from one a provider shapes otherwise
 * (`token_response` of its definition):
 * - `path`: the token set is the member at that dot path (Slack's user token in `authed_user`);
 *   every other member of the answer stays beside it (`extra`: Slack's `team`, `app_id`), minus
 *   the answer's own top-level token set (Slack's bot token is not this connection's) and minus
 *   the nested member's secrets. A refresh answer without that member is read at the top level
 *   (`flatRefresh`): Slack's are flat (`token_type: "user"` beside the tokens). Any other answer
 *   without it has no token set: its top-level tokens (Slack's bot token) are not taken instead.
 * - `scope_field`: the member of the token set holding the granted scopes (`scope` when that
 *   member is absent).
 */
export function tokenSetOf(body: Record<string, unknown>, shape?: { path?: string; scope_field?: string }, flatRefresh = false): Record<string, unknown> {
  if (!shape?.path && !shape?.scope_field) return body;
  const segments = shape.path ? shape.path.split('.') : [];
  const nested = segments.reduce<unknown>((v, k) => (isObject(v) && Object.hasOwn(v, k) ? v[k] : undefined), body);
  let out: Record<string, unknown>;
  let set: Record<string, unknown>;
  if (segments.length && isObject(nested)) {
    set = nested;
    out = without(body, TOKEN_SET_MEMBERS);
    // The nested member stays (Slack's `authed_user.id` names the user), its secrets do not.
    let parent = out;
    for (const [i, key] of segments.entries()) {
      const child = parent[key] as Record<string, unknown>;
      parent = parent[key] = i === segments.length - 1 ? without(child, SECRET_MEMBERS) : { ...child };
    }
    for (const key of TOKEN_SET_MEMBERS) if (set[key] !== undefined) out[key] = set[key];
  } else if (segments.length && !flatRefresh) {
    return without(body, TOKEN_SET_MEMBERS);
  } else {
    set = body;
    out = { ...body };
  }
  if (shape.scope_field && set[shape.scope_field] !== undefined) out.scope = set[shape.scope_field];
  return out;
}

/** Normalises a token endpoint's JSON object in place of the original (which is not modified). */
export function normaliseTokenResponse(body: Record<string, unknown>, scopeSeparator = ' '): Normalised {
  const json: Record<string, unknown> = { ...body };
  if (!isToken(json.access_token)) return { ok: false, field: 'access_token', reason: 'is missing or not a usable string' };
  // RFC 6749 §6: the IdP may leave the refresh token out (keep the old one); `null` and "" say the same.
  if (json.refresh_token === null || json.refresh_token === '') delete json.refresh_token;
  if (json.refresh_token !== undefined && !isToken(json.refresh_token)) {
    return { ok: false, field: 'refresh_token', reason: 'is not a usable string' };
  }
  // RFC 6749 §7.1: Warrant never reads token_type; the provider definition says how the token is
  // presented to the API. Any type is kept as sent (lower-cased), a missing one read as bearer.
  json.token_type = typeof json.token_type === 'string' && json.token_type.trim() ? json.token_type.trim().toLowerCase() : 'bearer';
  const expiresIn = normaliseExpiresIn(json.expires_in);
  if (expiresIn === undefined) delete json.expires_in;
  else json.expires_in = expiresIn;
  // RFC 6749 §5.1: no scope means the requested scope was granted; a malformed one says no more than that.
  if (Array.isArray(json.scope) && json.scope.every((s) => typeof s === 'string')) json.scope = json.scope.join(scopeSeparator);
  if (typeof json.scope !== 'string' || !json.scope.trim()) delete json.scope;
  // ID tokens are not asked for and not validated here (OIDC would need a nonce); they are not kept.
  // The account one names is (`sub`, `iss`): a re-connect must come back with the same account.
  const claims = idTokenClaims(json.id_token);
  delete json.id_token;
  if (claims) json.id_token_claims = claims;
  return { ok: true, json };
}

/** `sub` and `iss` of a JWT's payload, read without its signature (see tokens/account.ts), or undefined. */
function idTokenClaims(idToken: unknown): { sub: string; iss?: string } | undefined {
  if (typeof idToken !== 'string') return undefined;
  try {
    const payload = JSON.parse(Buffer.from(idToken.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown; iss?: unknown };
    if (typeof payload.sub !== 'string' || !payload.sub) return undefined;
    return { sub: payload.sub, ...(typeof payload.iss === 'string' ? { iss: payload.iss } : {}) };
  } catch {
    return undefined;
  }
}
