import { jsonValuesAt, type ResponsePattern } from '../providers/index.ts';

// A provider's response patterns (schema.ts `responsePatternSchema`) read against an IdP or API
// answer: the revocation `success` pattern, and `auth_failures` when a revocation is verified by
// an API call. Paths are read as the proxy reads them (providers/json-path.ts).

export interface Answer {
  status: number;
  headers: Headers;
  /** The parsed JSON body, undefined when the body is not JSON. */
  json: unknown;
  /** The raw body text. */
  text: string;
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
    if (!jsonValuesAt(r.json, key).some((actual) => options.some((o) => o === actual))) return false;
  }
  return true;
}
