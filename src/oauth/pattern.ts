import type { ResponsePattern } from '../providers/index.ts';

// A provider's response patterns (schema.ts `responsePatternSchema`) read against an IdP or API
// answer: the revocation `success` pattern, and `auth_failures` when a revocation is verified by
// an API call. The proxy has its own reader for its own answers (src/proxy/detect.ts); the oauth
// layer sits below it and cannot import it.

export interface Answer {
  status: number;
  headers: Headers;
  /** The parsed JSON body, undefined when the body is not JSON. */
  json: unknown;
  /** The raw body text. */
  text: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Every value at a dot path: `error.code`; `errors[].extensions.code` reads each element of
 * `errors`. A member written with a dot in its own name (`"error.code": …`) is read as such first.
 */
export function valuesAt(body: unknown, path: string): unknown[] {
  if (isObject(body) && Object.hasOwn(body, path)) return [body[path]];
  let current: unknown[] = [body];
  for (const segment of path.split('.')) {
    const each = segment.endsWith('[]');
    const name = each ? segment.slice(0, -2) : segment;
    const next: unknown[] = [];
    for (const value of current) {
      if (!isObject(value) || !Object.hasOwn(value, name)) continue;
      const member = value[name];
      if (each) {
        if (Array.isArray(member)) next.push(...member);
      } else next.push(member);
    }
    current = next;
  }
  return current;
}

/** Whether the answer matches: every member the pattern gives must; a pattern that gives none matches nothing. */
export function matchesAnswer(p: ResponsePattern, r: Answer): boolean {
  if (p.status === undefined && p.json === undefined && p.header === undefined && p.body_contains === undefined) return false;
  if (p.status !== undefined && !(Array.isArray(p.status) ? p.status.includes(r.status) : p.status === r.status)) return false;
  for (const [name, needle] of Object.entries(p.header ?? {})) {
    if (!r.headers.get(name)?.includes(needle)) return false;
  }
  if (p.body_contains !== undefined && !r.text.includes(p.body_contains)) return false;
  for (const [key, expected] of Object.entries(p.json ?? {})) {
    const options: unknown[] = Array.isArray(expected) ? expected : [expected];
    if (!valuesAt(r.json, key).some((actual) => options.some((o) => o === actual))) return false;
  }
  return true;
}
