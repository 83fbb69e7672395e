// Scope rules (DESIGN.md, provider format `scopes:`): what each granted scope lets an agent do
// through the proxy, checked before the upstream is called.
//
// Matching is segment by segment. The request path is split on '/' *as received* (still
// percent-encoded) and only then is each segment percent-decoded, once. So `%2F` never creates a
// segment: GitLab's `/projects/group%2Fproject/issues` is three segments to the policy, as to any
// RFC 3986 server. But a lenient upstream may decode `%2F` (or `%252F`, `%5C`, a fullwidth `／`)
// into a separator and see more segments, so a segment that holds a separator once decoded as
// far as it goes is *ambiguous*: only a `**` may span it, never a `*` or a literal. A `*` thus
// matches exactly one segment however the upstream reads the path; `resolveTarget` has already
// refused every form that could climb out (`..`, `%2e%2e%2f`, …).
// Rule paths are taken as written (decoded text: Discord's `/users/@me` matches `/users/@me`
// and `/users/%40me`). Comparison is case-sensitive; a `*` inside a segment (`a*`) is literal.
//
// A rule may also constrain the query string (`query:`), judged as leniently as the path: see
// `queryAllows`.

import type { ScopeRule } from '../providers/schema.ts';
import { decodeFully } from './target.ts';
import { memoize } from '../util/memo.ts';

/** Decodes the %XX escapes of one segment as UTF-8; an escape run that is not UTF-8 stays as written. */
export function decodeSegment(segment: string): string {
  if (!segment.includes('%')) return segment;
  return segment.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });
}

/**
 * A path segment as the policy compares it: its text decoded once, or `null` when it hides a
 * separator (see the module comment), which only `**` may span.
 */
export type PathSegment = string | null;

// '/', '\' and the characters lenient servers (NFKC, Windows best-fit mappings) read as one of them.
const SEPARATOR_LIKE = /[/\\\u2215\u2044\u29f5\u29f8\u29f9\uff0f\uff3c]/;
// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;

/** Whether a raw segment reads as more than one segment to some upstream. */
export function hidesSeparator(raw: string): boolean {
  if (!raw.includes('%') && !NON_ASCII.test(raw)) return raw.includes('\\');
  const text = decodeFully(raw);
  return SEPARATOR_LIKE.test(text) || (NON_ASCII.test(text) && SEPARATOR_LIKE.test(text.normalize('NFKC')));
}

/** Raw segments of a path ('' and '/' have none); one trailing slash is ignored. */
function rawSegments(path: string): string[] {
  let p = path.startsWith('/') ? path.slice(1) : path;
  if (p.endsWith('/')) p = p.slice(0, -1);
  return p === '' ? [] : p.split('/');
}

/** The segments of a request path, as the policy compares them (`null`: ambiguous, see above). */
export function pathSegments(path: string): PathSegment[] {
  return rawSegments(path).map((raw) => (hidesSeparator(raw) ? null : decodeSegment(raw)));
}

/** The segments of a rule's glob (taken literally, not decoded). */
export function globSegments(glob: string): string[] {
  return rawSegments(glob);
}

/**
 * Whether `segments` match glob segments: `*` one non-empty segment, `**` zero or more segments
 * anywhere, anything else itself; an ambiguous (`null`) segment only inside a `**`. Linear-time
 * table, so rules with many `**` are cheap.
 */
export function globMatches(glob: readonly string[], segments: readonly PathSegment[]): boolean {
  // can[j]: glob[0..i) matches segments[0..j); two rows, swapped after each glob segment.
  const n = segments.length;
  let can: boolean[] = new Array<boolean>(n + 1).fill(false);
  let next: boolean[] = new Array<boolean>(n + 1).fill(false);
  can[0] = true;
  for (const g of glob) {
    if (g === '**') {
      let seen = false;
      for (let j = 0; j <= n; j++) next[j] = seen ||= can[j]!;
    } else {
      next[0] = false;
      for (let j = 1; j <= n; j++) {
        const s = segments[j - 1]!;
        next[j] = can[j - 1]! && s !== null && (g === '*' ? s !== '' : s === g);
      }
    }
    const done = can;
    can = next;
    next = done;
  }
  return can[n]!;
}

/** Whether `method` is allowed by the rule's method(s): `*` allows all, `HEAD` is allowed where `GET` is. */
export function methodMatches(rule: Pick<ScopeRule, 'method'>, method: string): boolean {
  const m = method.toUpperCase();
  // One method (most rules): no arrays to build.
  if (typeof rule.method === 'string') {
    const r = rule.method.toUpperCase();
    return r === '*' || r === m || (m === 'HEAD' && r === 'GET');
  }
  const allowed = (Array.isArray(rule.method) ? rule.method : [rule.method]).map((x) => x.toUpperCase());
  return allowed.includes('*') || allowed.includes(m) || (m === 'HEAD' && allowed.includes('GET'));
}

/** One query parameter as every reading of it: its name normalised, each way its value may be decoded. */
export interface QueryParam {
  name: string;
  values: readonly string[];
}

const plusAsSpace = (s: string) => (s.includes('+') ? s.replaceAll('+', ' ') : s);

/**
 * The parameters of a raw query string (without '?') as a lenient server might read them: split
 * on '&' and also on ';'; names percent-decoded until nothing changes, trimmed and lower-cased
 * (`%2524ALT ` is `$alt`); each value with `+` as a space and as itself, decoded once and until
 * nothing changes. A constraint must hold for every reading.
 */
export function queryParams(rawQuery: string): QueryParam[] {
  const q = rawQuery.startsWith('?') ? rawQuery.slice(1) : rawQuery;
  if (q === '') return [];
  const pieces = q.split('&');
  for (const piece of q.split('&')) if (piece.includes(';')) pieces.push(...piece.split(';'));
  const out: QueryParam[] = [];
  for (const piece of pieces) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const rawName = eq < 0 ? piece : piece.slice(0, eq);
    const rawValue = eq < 0 ? '' : piece.slice(eq + 1);
    const values = new Set<string>();
    for (const v of [rawValue, plusAsSpace(rawValue)]) {
      values.add(decodeSegment(v));
      values.add(decodeFully(v));
    }
    for (const n of new Set([decodeFully(rawName), decodeFully(plusAsSpace(rawName))])) {
      out.push({ name: n.trim().toLowerCase(), values: [...values] });
    }
  }
  return out;
}

/**
 * Whether the query satisfies a rule's `query` constraints: a parameter constrained to a list may
 * be absent, and each of its occurrences must have a value in the list (compared exactly, in
 * every reading); a parameter constrained to `false` must not appear at all. Names are compared
 * case-insensitively. Parameters without a constraint are not looked at.
 */
export function queryAllows(constraints: NonNullable<ScopeRule['query']>, params: readonly QueryParam[]): boolean {
  for (const [name, allowed] of Object.entries(constraints)) {
    const key = name.trim().toLowerCase();
    for (const p of params) {
      if (p.name !== key) continue;
      if (allowed === false) return false;
      if (!p.values.every((v) => allowed.includes(v))) return false;
    }
  }
  return true;
}

/**
 * Whether one scope rule allows `method` on `path`, the request path relative to the API base
 * ('' or '/…', still percent-encoded — `resolveTargetWithPath(...).path`), with `query` the raw
 * query string that goes upstream, and `host` the API host key it goes to (undefined: the main
 * API; a rule matches only calls to its own host). See the module comment for how segments are compared.
 */
export function ruleMatches(rule: ScopeRule, method: string, path: string, query = '', host?: string): boolean {
  return (
    rule.host === host &&
    methodMatches(rule, method) &&
    globMatches(globSegments(rule.path), pathSegments(path)) &&
    (rule.query === undefined || queryAllows(rule.query, queryParams(query)))
  );
}

// Rule paths come from the catalog: split once, not on every call.
const ruleSegments = memoize(10_000, globSegments);

/**
 * The first scope of `granted` (in that order) with a rule allowing `method` on `path` with
 * `query` (the raw query string sent upstream), or undefined: no grant, unknown scope or no
 * matching rule all deny. `host` is the API host key the call goes to (hosts.ts): only rules
 * naming that host count, and for the main API (undefined) only rules naming none.
 */
export function findGrantedScope(
  scopeRules: Readonly<Record<string, readonly ScopeRule[]>>,
  granted: readonly string[],
  method: string,
  path: string,
  query = '',
  host?: string,
): string | undefined {
  const segments = pathSegments(path);
  let params: QueryParam[] | undefined; // parsed once, only if a rule constrains the query
  const allows = (rule: ScopeRule) =>
    rule.host === host &&
    methodMatches(rule, method) &&
    globMatches(ruleSegments(rule.path), segments) &&
    (rule.query === undefined || queryAllows(rule.query, (params ??= queryParams(query))));
  for (const scope of granted) {
    if (!Object.hasOwn(scopeRules, scope)) continue; // not `constructor`, `__proto__` …
    const rules = scopeRules[scope];
    if (!Array.isArray(rules)) continue;
    if (rules.some(allows)) return scope;
  }
  return undefined;
}
