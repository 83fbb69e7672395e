// Dot paths into an upstream's JSON answer, as response patterns write them (`json` keys,
// `required_scope_field`): `error.code` walks into nested objects, and `[]` after a segment means
// "any element of this array" (`errors[].extensions.code`, Google's `error.details[].reason`;
// `[][]` for an array of arrays; a leading `[]` enters an answer that is an array itself). Only own members count, and an array is entered only where the
// path says `[]`. A member whose own name holds dots is found too: the whole key as one member
// (so a key that named a top-level member before paths existed still does), Dropbox's `.tag` as
// `error..tag`.

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A member name without its trailing `[]`s, and how many there were. */
function splitArrays(name: string): { member: string; arrays: number } {
  let member = name;
  let arrays = 0;
  while (member.endsWith('[]')) {
    member = member.slice(0, -2);
    arrays++;
  }
  return { member, arrays };
}

function eachElement(value: unknown, arrays: number, visit: (v: unknown) => void): void {
  if (arrays === 0) visit(value);
  else if (Array.isArray(value)) for (const element of value) eachElement(element, arrays - 1, visit);
}

/**
 * Every value `path` reaches in `json`, in document order (a member holding dots before its
 * dotted reading); `[]` when it reaches none. The root must be an object. Each (object, position
 * in the path) pair is walked once, so the cost is bounded by the answer's size times the path's
 * length, whatever the answer holds.
 */
export function jsonValuesAt(json: unknown, path: string): unknown[] {
  // A top-level array (Salesforce answers `[{"errorCode": "INVALID_SESSION_ID"}]`): `[].errorCode`.
  if (path.startsWith('[]') && Array.isArray(json)) {
    const rest = path.slice(2).replace(/^\./, '');
    return rest === '' ? [...json] : json.flatMap((element) => (rest.startsWith('[]') || isObject(element) ? jsonValuesAt(element, rest) : []));
  }
  if (!isObject(json)) return [];
  // The common case: one plain member.
  if (!path.includes('.') && !path.endsWith('[]')) return Object.hasOwn(json, path) ? [json[path]] : [];
  const pieces = path.split('.');
  const out: unknown[] = [];
  const walked = new Map<object, Set<number>>();
  const walk = (node: unknown, at: number): void => {
    if (at === pieces.length) {
      out.push(node);
      return;
    }
    if (!isObject(node)) return;
    let positions = walked.get(node);
    if (!positions) walked.set(node, (positions = new Set()));
    if (positions.has(at)) return;
    positions.add(at);
    // The longest name first: a member spelled with dots wins over the path through its parts.
    for (let end = pieces.length; end > at; end--) {
      const { member, arrays } = splitArrays(pieces.slice(at, end).join('.'));
      if (Object.hasOwn(node, member)) eachElement(node[member], arrays, (v) => walk(v, end));
    }
  };
  walk(json, 0);
  return out;
}

/**
 * The first non-empty string, or non-empty array of strings (joined with spaces), that `path`
 * reaches: the missing scope an answer names (Slack `needed`, Dropbox `error.required_scope`,
 * HubSpot `errors[].context.requiredGranularScopes`).
 */
export function firstScopeAt(json: unknown, path: string): string | undefined {
  for (const value of jsonValuesAt(json, path)) {
    if (typeof value === 'string' && value !== '') return value;
    if (Array.isArray(value) && value.length && value.every((v) => typeof v === 'string')) return value.join(' ');
  }
  return undefined;
}
