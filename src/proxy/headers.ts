import type { IncomingHttpHeaders } from 'node:http';

// RFC 9110 §7.6.1: connection-specific fields are not forwarded by intermediaries.
const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
  'expect',
]);

/**
 * What never leaves Warrant towards the upstream: the agent's own credential, cookies, our headers,
 * and method overrides — Google, Microsoft and many frameworks run the method these name, not the
 * request's, so forwarding them would let a `POST` the policy allowed act as a `DELETE` it did not.
 */
const agentOnly = new Set(['authorization', 'cookie', 'forwarded', 'x-real-ip', 'x-http-method-override', 'x-http-method', 'x-method-override']);

const none: ReadonlySet<string> = new Set();

/** Fields a `Connection` header names are hop-by-hop too (RFC 9110 §7.6.1). */
function namedByConnection(headers: Record<string, unknown>): ReadonlySet<string> {
  const value = headers.connection;
  if (value === undefined) return none;
  // The usual value names a field dropped anyway: no set to build on every call.
  if (typeof value === 'string' && value.toLowerCase() === 'keep-alive') return none;
  return new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
}

export function upstreamRequestHeaders(incoming: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const listed = namedByConnection(incoming);
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined) continue;
    const n = name.toLowerCase();
    if (hopByHop.has(n) || agentOnly.has(n) || listed.has(n) || n.startsWith('x-forwarded-') || n.startsWith('warrant-')) continue;
    out[n] = value;
  }
  return out;
}

/** Upstream answer headers safe to hand to the agent: no hop-by-hop fields, no upstream cookies. */
export function agentResponseHeaders(upstream: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const listed = namedByConnection(upstream);
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined) continue;
    const n = name.toLowerCase();
    if ((hopByHop.has(n) && n !== 'content-length') || listed.has(n) || n === 'set-cookie' || n.startsWith('warrant-')) continue;
    out[n] = value;
  }
  return out;
}
