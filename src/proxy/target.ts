// Where a proxied call goes: the connection's API base URL joined with the agent's path.
//
// The upstream host is fixed by the provider catalog (DESIGN.md, "Retry rules of the proxy"):
// a path that could leave the base is refused *before* anything is sent. The path is judged as
// a lenient upstream would read it — percent-escapes decoded again and again until nothing
// changes, backslashes folded to slashes, compatibility characters normalised (NFKC), `;path`
// parameters cut off — so `%2e%2e`, `%252e%252e`, `..%2f`, `%2e%2e%5c`, `..;`, `．．` and
// `%c0%ae` (overlong UTF-8) are all refused, while the agent's own encoding of legitimate
// characters (`%20`, `%2F` inside a GitLab project id, `%40` in a calendar id) is forwarded
// byte for byte.

import { invalidRequest, WarrantError } from '../errors/index.ts';
import { memoize } from '../util/memo.ts';

export interface TargetOptions {
  /**
   * How `@` (raw or percent-encoded) is treated.
   * - `'first-segment'` (default): refused in the first segment after the base (`/@evil.com`,
   *   `/user@host/x`), the only place it could read as userinfo to a naive joiner; allowed
   *   further in, because real APIs need it there: Discord's `/users/@me` (a catalog scope rule),
   *   Google Calendar ids and Gmail user ids that are e-mail addresses.
   * - `'anywhere'`: refused everywhere in the path.
   */
  refuseAtSign?: 'first-segment' | 'anywhere';
}

export interface ResolvedTarget {
  /** The URL to call upstream. */
  url: URL;
  /**
   * The path relative to the API base exactly as it is forwarded ('' or starting with '/'),
   * still percent-encoded: what the scope rules must be checked against (`ruleMatches`), so the
   * policy sees the same segments as the upstream (a raw `\` has already become `/`).
   */
  path: string;
}

/** Nesting deeper than this (`%25252525…2e`) is refused rather than decoded further. */
const MAX_DECODE_LAYERS = 16;

// A run of %XX escapes (decoded together as UTF-8) or one IIS-style %uXXXX escape.
const ESCAPES = /(?:%[0-9A-Fa-f]{2})+|%[uU][0-9A-Fa-f]{4}/g;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lenientUtf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/** One decoding pass. `invalid` is set when some %XX run is not valid UTF-8 (e.g. overlong `%c0%ae`). */
function decodeOnce(s: string): { text: string; invalid: boolean } {
  let invalid = false;
  const text = s.replace(ESCAPES, (run) => {
    if (run[1] === 'u' || run[1] === 'U') return String.fromCharCode(parseInt(run.slice(2), 16));
    const bytes = Uint8Array.from(run.slice(1).split('%'), (h) => parseInt(h, 16));
    try {
      return strictUtf8.decode(bytes);
    } catch {
      invalid = true;
      return lenientUtf8.decode(bytes);
    }
  });
  return { text, invalid };
}

function decodeLayers(s: string, limit = Infinity): { text: string; invalid: boolean; layers: number } {
  let text = s;
  let invalid = false;
  // Every pass that changes something makes the string strictly shorter, so this ends.
  for (let layers = 0; layers <= limit; layers++) {
    const next = decodeOnce(text);
    invalid ||= next.invalid;
    if (next.text === text) return { text, invalid, layers };
    text = next.text;
  }
  return { text, invalid, layers: limit + 1 };
}

/**
 * Percent-decodes `s` repeatedly until it no longer changes, as the most lenient upstream would:
 * `%XX` runs as UTF-8 (invalid bytes become U+FFFD), `%uXXXX` as a UTF-16 code unit, malformed
 * escapes (`%zz`, a lone `%`) left as they are.
 */
export function decodeFully(s: string): string {
  return decodeLayers(s).text;
}

/** Backslashes read as slashes (Windows servers, and every WHATWG parser for http/https). */
export const foldBackslashes = (s: string): string => s.replaceAll('\\', '/');

const CONTROL = /\p{Cc}/u;
// Characters that NFKC leaves alone but Windows "best fit" code-page mappings turn into '/', '\\'
// or '.' (IIS and other lenient servers): judged in a third form of the path.
const LOOKALIKE_MAP: Record<string, string> = { '\u2215': '/', '\u2044': '/', '\u29f8': '/', '\u29f5': '\\', '\u29f9': '\\', '\u2219': '.', '\u22c5': '.', '\u00b7': '.' };
const LOOKALIKES = new RegExp(`[${Object.keys(LOOKALIKE_MAP).join('')}]`, 'gu');
const lookalike = (c: string) => LOOKALIKE_MAP[c] ?? c;
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
/** A first segment `scheme:` followed by a slash (`/http://evil`, `/https:\\evil`); `/people:batchGet` is fine. */
const SCHEME_SEGMENT = /^\/[A-Za-z][A-Za-z0-9+.-]*:\//;

/** The head of a segment a server might resolve as "." or "..": before any `;param`, `?` or `#`, trimmed. */
function isDotSegment(segment: string): boolean {
  if (!segment.includes('.')) return false;
  const head = segment.split(/[;?#]/, 1)[0]!.trim();
  return head.length > 0 && /^\.+$/.test(head);
}

const refuse = (detail: string) => invalidRequest('path', detail);

/** Letters, digits, `_`, `-` and `/`: nothing to decode, fold or normalise, no dot, no `@`, no scheme. */
const PLAIN_PATH = /^[A-Za-z0-9_/-]*$/;

/** Throws `invalid_request` (field `path`) unless `path` (starting with '/') stays under the base however it is decoded. */
function validate(raw: string, options: TargetOptions): void {
  // The common case: every check below passes for such a path, except a leading '//'.
  if (PLAIN_PATH.test(raw) && !raw.startsWith('//')) return;
  const decoded = decodeLayers(raw, MAX_DECODE_LAYERS);
  if (decoded.layers > MAX_DECODE_LAYERS) throw refuse('is percent-encoded too many times over');
  if (decoded.invalid) throw refuse('has percent-escapes that are not valid UTF-8');
  const atSign = options.refuseAtSign ?? 'first-segment';
  const text = decoded.text;
  const forms = [foldBackslashes(text)];
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(text)) {
    const nfkc = text.normalize('NFKC');
    forms.push(foldBackslashes(nfkc), foldBackslashes(nfkc.replace(LOOKALIKES, lookalike)));
  }
  for (const form of forms) {
    if (CONTROL.test(form)) throw refuse('has control characters');
    if (form.startsWith('//')) throw refuse('cannot start with "//" (it would name another host)');
    if (SCHEME_SEGMENT.test(form)) throw refuse('must be relative to the API base, not an absolute URL');
    const segments = form.split('/');
    if (segments.some(isDotSegment)) throw refuse('has "." or ".." segments');
    if (atSign === 'anywhere' ? form.includes('@') : segments[1]?.includes('@')) throw refuse(AT_SIGN);
  }
  // The first segment as the upstream splits it (an encoded '/' does not end it).
  if (atSign === 'first-segment' && decodeFully(raw.split(/[/\\]/, 2)[1] ?? '').includes('@')) throw refuse(AT_SIGN);
}

const AT_SIGN = 'has "@" where it could read as a user name';

function parseBase(apiBaseUrl: string): URL {
  let base: URL;
  try {
    base = new URL(apiBaseUrl);
  } catch (cause) {
    throw new WarrantError('internal_error', `the API base URL is not a URL: ${apiBaseUrl}`, {}, { cause });
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') {
    throw new WarrantError('internal_error', `the API base URL is not http(s): ${apiBaseUrl}`);
  }
  return base;
}

/** Parsed API bases, by their text: a connection's base is the same on every call. Never mutated. */
const parsedBase = memoize(1024, (apiBaseUrl: string) => {
  const base = parseBase(apiBaseUrl);
  return { base, basePath: base.pathname.replace(/\/+$/, '') };
});

/** `pathname` is `basePath` itself or lies under it (`basePath` without trailing slashes, '' for the root). */
function isUnder(pathname: string, basePath: string): boolean {
  return pathname === basePath || pathname.startsWith(`${basePath}/`);
}

/**
 * Resolves the agent's path against the API base and also returns the forwarded relative path,
 * which is what policy checks must use. See `resolveTarget`.
 */
export function resolveTargetWithPath(apiBaseUrl: string, rawPath: string, rawQuery?: string, options: TargetOptions = {}): ResolvedTarget {
  const { base, basePath } = parsedBase(apiBaseUrl);

  let forwarded = '';
  if (rawPath !== '') {
    let raw = rawPath;
    if (raw.includes('?') || raw.includes('#')) throw refuse('has "?" or "#": the query string is passed separately');
    if (raw[0] !== '/' && raw[0] !== '\\') {
      if (SCHEME.test(raw)) throw refuse('must be relative to the API base, not an absolute URL');
      raw = `/${raw}`;
    }
    validate(raw, options);
    // Forward the agent's bytes. A raw backslash becomes '/', as any http(s) parser would read it
    // (so the policy sees the segments the upstream sees); a raw space is encoded (URL parsers
    // drop trailing ones); everything else the WHATWG serializer encodes by itself.
    forwarded = foldBackslashes(raw).replaceAll(' ', '%20');
  }

  const url = new URL(base.href);
  url.hash = '';
  // The pathname setter cannot touch the host, whatever the string holds.
  url.pathname = forwarded === '' ? base.pathname : basePath + forwarded;
  const baseQuery = base.search.slice(1);
  const query = baseQuery === '' ? (rawQuery ?? '') : rawQuery ? `${baseQuery}&${rawQuery}` : baseQuery;
  url.search = query === '' ? '' : `?${query}`;

  // Defence in depth: whatever the parsing above did, the result must still be under the base.
  const landed = foldBackslashes(decodeFully(url.pathname));
  if (url.origin !== base.origin || !isUnder(url.pathname, basePath) || landed.split('/').some(isDotSegment)) {
    throw refuse('leaves the API base URL');
  }
  return { url, path: url.pathname.slice(basePath.length) };
}

/**
 * The upstream URL for `ANY /v1/proxy/{connection}/{rawPath}?{rawQuery}`.
 *
 * - `rawPath`: what follows `/v1/proxy/{connection}` in the request URL, still percent-encoded,
 *   '' or starting with '/'. '' is the base itself.
 * - `rawQuery`: the query string without its '?', appended as is (after the base's own query, if any).
 *
 * The result has the base's origin and a pathname at or under the base's pathname
 * (`https://api.x.com/v2` + `/items/1` → `https://api.x.com/v2/items/1`, with or without a
 * trailing slash on the base). Throws `invalid_request` with `field: 'path'` for anything that
 * could leave the base as a lenient upstream reads it: absolute URLs and `//host` / `\\host`,
 * any `.` or `..` segment after repeated percent-decoding, backslash folding and NFKC (also with
 * `;params`, `?` or `#` after the dots, or surrounding spaces), percent-escapes that are not valid
 * UTF-8, control characters (raw or encoded), `@` in the first segment (see `TargetOptions`),
 * and a raw `?` or `#` (the query is passed separately).
 */
export function resolveTarget(apiBaseUrl: string, rawPath: string, rawQuery?: string, options?: TargetOptions): URL {
  return resolveTargetWithPath(apiBaseUrl, rawPath, rawQuery, options).url;
}
