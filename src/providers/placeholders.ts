// Typed `{param}` placeholders in endpoint templates. A value fills a URL that receives the
// authorization code, the PKCE verifier, the client secret and the agents' tokens, so what a value
// may be is declared per placeholder (connection_params.<name>.type), checked where the value
// enters (connect session, callback, token response, import), encoded where it lands, and the
// filled URL's host is checked against the template's fixed part before anything is sent.

export const placeholderTypes = ['hostname_label', 'hostname', 'hostname_under', 'uuid', 'numeric_id', 'path_segment', 'https_origin'] as const;
export type PlaceholderType = (typeof placeholderTypes)[number];

export interface PlaceholderSpec {
  type?: PlaceholderType;
  /** `hostname`, `hostname_under`, `https_origin`: the host must end with one of these (`.myshopify.com`). */
  suffix?: string | string[];
}

/** The template keys whose values are URLs Warrant sends requests to. */
export const endpointKeys = ['authorization_url', 'token_url', 'refresh_url', 'revocation_url', 'introspection_url', 'userinfo_url', 'api_base_url'] as const;

/**
 * Where a placeholder lands: `origin` (the template starts with it: scheme and host come from the
 * value), `host` (the whole host), `host_label` (the first label of a host with a fixed suffix),
 * `path`, or somewhere no typed value may go (`query`, or a host written any other way).
 */
export type Position = 'origin' | 'host' | 'host_label' | 'path' | 'query' | 'host_other';

/** The types a position accepts. */
export const typesFor: Record<Position, readonly PlaceholderType[]> = {
  origin: ['https_origin'],
  host: ['hostname', 'hostname_under'],
  host_label: ['hostname_label'],
  path: ['path_segment', 'uuid', 'numeric_id', 'hostname_label'],
  query: [],
  host_other: [],
};

const PLACEHOLDER = /\{([a-z][a-z0-9_]*)\}/g;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NUMERIC = /^[0-9]{1,32}$/;
// RFC 3986 §3.3 pchar without pct-encoded and without the sub-delims some servers treat as
// separators (`;` matrix params, `&`): nothing in it can end a segment or be decoded into `/`.
const SEGMENT = /^[A-Za-z0-9._~:@!$'()*+,=-]{1,256}$/;

export class PlaceholderError extends Error {
  override name = 'PlaceholderError';
  constructor(
    readonly param: string,
    readonly reason: string,
  ) {
    super(`{${param}} ${reason}`);
  }
}

interface Parsed {
  /** `scheme://` of a template with a fixed scheme; empty for an `origin` template. */
  scheme: string;
  /** The authority as written (may hold placeholders); for an `origin` template, the placeholder itself. */
  authority: string;
  rest: string;
}

function parse(template: string): Parsed {
  const origin = /^\{[a-z][a-z0-9_]*\}/.exec(template);
  if (origin) return { scheme: '', authority: origin[0], rest: template.slice(origin[0].length) };
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/is.exec(template);
  return m ? { scheme: m[1]!, authority: m[2]!, rest: m[3]! } : { scheme: '', authority: '', rest: template };
}

/** Every placeholder of a template with where it lands. */
export function placeholdersOf(template: string): { name: string; position: Position }[] {
  const { scheme, authority, rest } = parse(template);
  const out: { name: string; position: Position }[] = [];
  if (!scheme && authority) out.push({ name: authority.slice(1, -1), position: 'origin' });
  for (const m of authority.matchAll(PLACEHOLDER)) {
    if (!scheme) break;
    const host = authority.replace(/:\d+$/, '');
    const position: Position = host === m[0] ? 'host' : host.startsWith(`${m[0]}.`) && !host.slice(m[0].length).includes('{') ? 'host_label' : 'host_other';
    out.push({ name: m[1]!, position });
  }
  const queryAt = rest.search(/[?#]/);
  for (const m of rest.matchAll(PLACEHOLDER)) {
    out.push({ name: m[1]!, position: queryAt >= 0 && m.index >= queryAt ? 'query' : 'path' });
  }
  return out;
}

const suffixesOf = (spec: PlaceholderSpec): string[] =>
  (spec.suffix === undefined ? [] : Array.isArray(spec.suffix) ? spec.suffix : [spec.suffix]).map((s) => (s.startsWith('.') ? s : `.${s}`).toLowerCase());

function hostnameProblem(host: string): string | undefined {
  if (host.length > 253) return 'is too long for a host name';
  const labels = host.split('.');
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) {
    return 'must be a fully qualified host name: dot-separated labels of letters, digits and "-"';
  }
  // RFC 1123 §2.1: a top-level label is never all digits, so this refuses IPv4 literals too.
  if (/^[0-9]+$/.test(labels.at(-1)!)) return 'must be a host name, not an IP address';
  return undefined;
}

function suffixProblem(host: string, spec: PlaceholderSpec): string | undefined {
  const suffixes = suffixesOf(spec);
  if (!suffixes.length) return undefined;
  const h = host.toLowerCase();
  if (suffixes.some((s) => h.endsWith(s) && h.length > s.length)) return undefined;
  return `must be a host under ${suffixes.join(' or ')}`;
}

/** Why `value` is not a valid `spec.type`, or undefined when it is. */
export function valueProblem(spec: PlaceholderSpec, value: unknown): string | undefined {
  if (typeof value !== 'string' || !value) return 'must be a non-empty string';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return 'must not contain control characters';
  switch (spec.type) {
    case undefined:
      return undefined;
    case 'hostname_label':
      return LABEL.test(value) ? undefined : 'must be a single DNS label: letters, digits and "-", no dots';
    case 'hostname':
    case 'hostname_under':
      if (spec.type === 'hostname_under' && !suffixesOf(spec).length) return 'cannot be checked: its definition declares no suffix';
      return hostnameProblem(value) ?? suffixProblem(value, spec);
    case 'uuid':
      return UUID.test(value) ? undefined : 'must be a UUID';
    case 'numeric_id':
      return NUMERIC.test(value) ? undefined : 'must be digits only';
    case 'path_segment':
      if (value === '.' || value === '..') return 'must not be "." or ".."';
      return SEGMENT.test(value) ? undefined : 'must be one path segment: letters, digits and . _ ~ : @ ! $ \' ( ) * + , = - only';
    case 'https_origin': {
      if (!suffixesOf(spec).length) return 'cannot be checked: its definition declares no suffix';
      let u: URL;
      try {
        u = new URL(value);
      } catch {
        return 'must be an https URL';
      }
      if (u.protocol !== 'https:') return 'must be an https URL';
      if (u.username || u.password || u.port) return 'must be https://host, without credentials or a port';
      if (value.replace(/\/$/, '').toLowerCase() !== u.origin) return 'must be an origin only (https://host), without a path, query or fragment';
      return hostnameProblem(u.hostname) ?? suffixProblem(u.hostname, spec);
    }
  }
}

/** The value as it is written into the URL. */
function landed(spec: PlaceholderSpec, value: string, position: Position): string {
  if (spec.type === 'https_origin') return new URL(value).origin;
  if (position === 'path') return encodeURIComponent(value);
  return value.toLowerCase();
}

/**
 * Fills every placeholder of an endpoint template with its checked, encoded value, then checks
 * the filled URL's host is the template's own (the fixed part, with the checked values in place).
 * Throws PlaceholderError naming the placeholder at fault.
 */
export function fillEndpoint(template: string, params: Record<string, string>, specs: Record<string, PlaceholderSpec | undefined>): string {
  const positions = placeholdersOf(template);
  const fill = (part: string, offsetOf: (name: string) => Position) =>
    part.replace(PLACEHOLDER, (_, name: string) => {
      const spec = specs[name];
      const value = params[name];
      if (value === undefined) throw new PlaceholderError(name, 'has no value on this connection');
      if (!spec?.type) throw new PlaceholderError(name, 'has no declared type (connection_params.<name>.type)');
      const position = offsetOf(name);
      if (!typesFor[position].includes(spec.type)) throw new PlaceholderError(name, `may not be used in the ${position} of a URL as ${spec.type}`);
      const problem = valueProblem(spec, value);
      if (problem) throw new PlaceholderError(name, problem);
      return landed(spec, value, position);
    });
  const { scheme, authority, rest } = parse(template);
  const positionIn = (where: 'authority' | 'rest') => (name: string) =>
    positions.find((p) => p.name === name && (where === 'rest' ? p.position === 'path' || p.position === 'query' : p.position !== 'path' && p.position !== 'query'))!.position;
  const head = scheme + fill(authority, positionIn('authority'));
  const filled = head + fill(rest, positionIn('rest'));
  let expected: URL;
  let url: URL;
  try {
    expected = new URL(head);
    url = new URL(filled);
  } catch {
    throw new PlaceholderError(positions[0]?.name ?? '?', 'does not make a valid URL');
  }
  if (url.origin !== expected.origin || url.username || url.password) {
    throw new PlaceholderError(positions[0]?.name ?? '?', `moves the URL's host away from the template's (${expected.host})`);
  }
  return filled;
}

/** The names of a template's placeholders (any position). */
export const placeholderNames = (template: string): string[] => [...template.matchAll(PLACEHOLDER)].map((m) => m[1]!);
