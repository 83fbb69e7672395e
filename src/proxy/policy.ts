// Scope rules (DESIGN.md, provider format `scopes:`): what each granted scope lets an agent do
// through the proxy, checked before the upstream is called.
//
// Matching is segment by segment. The request path is split on '/' *as received* (still
// percent-encoded) and only then is each segment percent-decoded, once. So `%2F` never creates a
// segment: GitLab's `/projects/group%2Fproject/issues` is three segments and `group/project` is
// the one `*` matches — which is how GitLab (and any RFC 3986 server) reads it. An upstream that
// decoded `%2F` into a separator would see more segments than the policy did; rules written with
// a `**` tail do not care, and `resolveTarget` has already refused every form that could climb
// out (`..`, `%2e%2e%2f`, …), so the worst case stays inside the rule's literal prefix.
// Rule paths are taken as written (decoded text: Discord's `/users/@me` matches `/users/@me`
// and `/users/%40me`). Comparison is case-sensitive; a `*` inside a segment (`a*`) is literal.

import type { ScopeRule } from '../providers/schema.ts';

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

/** Raw segments of a path ('' and '/' have none); one trailing slash is ignored. */
function rawSegments(path: string): string[] {
  let p = path.startsWith('/') ? path.slice(1) : path;
  if (p.endsWith('/')) p = p.slice(0, -1);
  return p === '' ? [] : p.split('/');
}

/** The decoded segments of a request path, as the policy compares them. */
export function pathSegments(path: string): string[] {
  return rawSegments(path).map(decodeSegment);
}

/** The segments of a rule's glob (taken literally, not decoded). */
export function globSegments(glob: string): string[] {
  return rawSegments(glob);
}

/**
 * Whether decoded `segments` match glob segments: `*` one non-empty segment, `**` zero or more
 * segments anywhere, anything else itself. Linear-time table, so rules with many `**` are cheap.
 */
export function globMatches(glob: readonly string[], segments: readonly string[]): boolean {
  // can[j]: glob[0..i) matches segments[0..j)
  let can: boolean[] = Array.from({ length: segments.length + 1 }, (_, j) => j === 0);
  for (const g of glob) {
    const next: boolean[] = new Array<boolean>(segments.length + 1).fill(false);
    if (g === '**') {
      let seen = false;
      for (let j = 0; j <= segments.length; j++) next[j] = seen ||= can[j]!;
    } else {
      for (let j = 1; j <= segments.length; j++) {
        const s = segments[j - 1]!;
        next[j] = can[j - 1]! && (g === '*' ? s !== '' : s === g);
      }
    }
    can = next;
  }
  return can[segments.length]!;
}

/** Whether `method` is allowed by the rule's method(s): `*` allows all, `HEAD` is allowed where `GET` is. */
export function methodMatches(rule: Pick<ScopeRule, 'method'>, method: string): boolean {
  const m = method.toUpperCase();
  const allowed = (Array.isArray(rule.method) ? rule.method : [rule.method]).map((x) => x.toUpperCase());
  return allowed.includes('*') || allowed.includes(m) || (m === 'HEAD' && allowed.includes('GET'));
}

/**
 * Whether one scope rule allows `method` on `path`, the request path relative to the API base
 * ('' or '/…', still percent-encoded — `resolveTargetWithPath(...).path`). See the module comment
 * for how segments are compared.
 */
export function ruleMatches(rule: ScopeRule, method: string, path: string): boolean {
  return methodMatches(rule, method) && globMatches(globSegments(rule.path), pathSegments(path));
}

/**
 * The first scope of `granted` (in that order) with a rule allowing `method` on `path`, or
 * undefined: no grant, unknown scope or no matching rule all deny.
 */
export function findGrantedScope(
  scopeRules: Readonly<Record<string, readonly ScopeRule[]>>,
  granted: readonly string[],
  method: string,
  path: string,
): string | undefined {
  const segments = pathSegments(path);
  for (const scope of granted) {
    if (!Object.hasOwn(scopeRules, scope)) continue; // not `constructor`, `__proto__` …
    const rules = scopeRules[scope];
    if (!Array.isArray(rules)) continue;
    if (rules.some((rule) => methodMatches(rule, method) && globMatches(globSegments(rule.path), segments))) return scope;
  }
  return undefined;
}
