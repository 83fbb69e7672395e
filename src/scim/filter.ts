import { ScimError } from './errors.ts';

// The filters identity providers send to find a user before creating it (RFC 7644 §3.4.2.2):
// Okta `userName eq "…"`, Microsoft Entra `userName eq "…"` or `externalId eq "…"`. Only one
// `eq` comparison of these attributes is served; anything else is a 400 `invalidFilter`, never a
// silently wider answer.

export type FilterAttribute = 'userName' | 'externalId' | 'id';

export interface UserFilter {
  attribute: FilterAttribute;
  value: string;
}

/** Longest filter accepted, in characters. */
export const MAX_FILTER_LENGTH = 2048;

const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:user:';

// Attribute names and operators are case-insensitive (RFC 7643 §2.1, RFC 7644 §3.4.2.2).
const attributes: Record<string, FilterAttribute> = { username: 'userName', externalid: 'externalId', id: 'id' };

const invalidFilter = (detail: string) => new ScimError(400, 'invalidFilter', `filter: ${detail}`);

/**
 * Parses `attrPath SP "eq" SP string`; the value is a JSON string (RFC 7644 §3.4.2.2 takes
 * compValue from JSON), so `\"` and `\\` escapes are honoured.
 * @throws ScimError 400 invalidFilter for any other filter.
 */
export function parseFilter(filter: string): UserFilter {
  if (filter.length > MAX_FILTER_LENGTH) throw invalidFilter(`longer than ${MAX_FILTER_LENGTH} characters`);
  const text = filter.trim();
  const head = /^(\S+)[ \t]+(\S+)[ \t]+/.exec(text);
  if (!head) throw invalidFilter('expected `userName eq "value"`');
  const [, path, operator] = head as unknown as [string, string, string];
  let name = path.toLowerCase();
  if (name.startsWith(CORE_USER)) name = name.slice(CORE_USER.length);
  const attribute = attributes[name];
  if (!attribute) throw invalidFilter('only userName, externalId and id can be filtered on');
  if (operator.toLowerCase() !== 'eq') throw invalidFilter('only the eq operator is supported');
  const rest = text.slice(head[0].length);
  const end = stringEnd(rest);
  if (end < 0) throw invalidFilter(`${attribute} is compared with a quoted string`);
  let value: unknown;
  try {
    value = JSON.parse(rest.slice(0, end));
  } catch {
    throw invalidFilter('the value is not a valid JSON string');
  }
  if (rest.slice(end).trim()) throw invalidFilter('only one comparison is supported (no and, or, not, or grouping)');
  return { attribute, value: value as string };
}

/** Index just past the closing quote of the JSON string `s` starts with, or -1. */
function stringEnd(s: string): number {
  if (s[0] !== '"') return -1;
  for (let i = 1; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === '"') return i + 1;
  }
  return -1;
}

/** The filter for `value`, as an identity provider writes it (tests, docs). */
export const formatFilter = (f: UserFilter) => `${f.attribute} eq ${JSON.stringify(f.value)}`;
