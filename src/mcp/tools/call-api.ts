import { Readable } from 'node:stream';
import { z } from 'zod';
import { WarrantError } from '../../errors/index.ts';
import type { Forwarder } from '../../proxy/index.ts';
import type { Limits } from '../../limits/index.ts';
import { MCP_SCOPES } from '../caller.ts';
import { defineTool } from '../tool-kit.ts';
import { connectionId } from './connections.ts';

// call_api: one proxied request under the caller's policy, through the proxy's own forward path
// (grant and scope rules, token injection, refresh on 401, typed problems, retries, the proxy.call
// audit entry). Only the framing differs from /v1/proxy: arguments in, a bounded answer out.

// RFC 3986 §3.3 path characters; anything else must come percent-encoded, as on the wire.
const pathPattern = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/;
const headerName = /^[A-Za-z0-9-]{1,64}$/;
const textual = /^(text\/|application\/([a-z0-9.+-]*\+)?(json|xml|x-www-form-urlencoded|javascript|graphql)\b)/i;

export interface CallApiDeps {
  forwarder: Pick<Forwarder, 'forward'>;
  limits?: Pick<Limits, 'admit'>;
  bodyLimitBytes: number;
  responseLimitBytes: number;
}

/** The first `limit` bytes of an answer; a longer one is cut and its stream destroyed (its connection is not reused). */
async function firstBytes(body: Readable | Buffer | null, limit: number): Promise<{ bytes: Buffer; truncated: boolean }> {
  if (body === null) return { bytes: Buffer.alloc(0), truncated: false };
  if (Buffer.isBuffer(body)) return { bytes: body.subarray(0, limit), truncated: body.length > limit };
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      chunks.push(b);
      size += b.length;
      if (size > limit) {
        body.destroy();
        return { bytes: Buffer.concat(chunks, size).subarray(0, limit), truncated: true };
      }
    }
  } catch (err) {
    throw new WarrantError('upstream_unavailable', 'the upstream answer broke off while it was being read', { retry_after: 1 }, { cause: err, status: 502 });
  }
  return { bytes: Buffer.concat(chunks, size), truncated: false };
}

export function callApiTool(deps: CallApiDeps) {
  return defineTool({
    name: 'call_api',
    title: "Call a connection's API",
    description:
      "Sends one HTTP request to the API of a connection (see list_connections) with the connection's credential added by Warrant. " +
      '`path` is relative to the provider\'s API base URL (e.g. `/user/repos`), percent-encoded, without query: put the query in `query`. ' +
      "The agent's policy decides which methods and paths it may call. The result carries the upstream's status, headers and body (cut at a size limit; `truncated` says so). " +
      'On failure the result is an error whose JSON says what to do: `policy_denied` (this agent may not make this call: do not retry), ' +
      '`scope_insufficient` (the account lacks `required_scope`: ask for it with request_access), `reauth_required` (the owner must re-connect; tell the user, see `reauth_url`), ' +
      '`rate_limited` / `upstream_rate_limited` / `refresh_unavailable` / `upstream_unavailable` (wait `retry_after` seconds, then retry).',
    scope: MCP_SCOPES.call,
    input: z.strictObject({
      connection: connectionId.describe('the connection id, from list_connections'),
      method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']).default('GET'),
      path: z.string().max(2048).regex(pathPattern, { message: 'is a path starting with "/", percent-encoded, without "?" or "#"' }),
      query: z
        .record(z.string().min(1).max(256), z.union([z.string().max(4096), z.array(z.string().max(4096)).max(50)]))
        .optional()
        .describe('query parameters; a list repeats the name'),
      headers: z
        .record(z.string().regex(headerName, { message: 'is an HTTP header name' }), z.string().max(8192).regex(/^[^\r\n]*$/, { message: 'is one line' }))
        .refine((h) => Object.keys(h).length <= 32, { message: 'at most 32 headers' })
        .optional()
        .describe('extra request headers (Authorization and cookies are never forwarded: Warrant adds the credential)'),
      body: z
        .union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())])
        .optional()
        .describe('request body: a string is sent as is; an object or array is sent as JSON'),
    }),
    output: z.object({
      status: z.number().int(),
      headers: z.record(z.string(), z.string()),
      body: z.string().describe('the answer body: text as is, anything else base64 (see body_encoding)'),
      body_encoding: z.enum(['text', 'base64']),
      truncated: z.boolean(),
    }),
    annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: true },
    subjectOf: (a) => `connection:${a.connection}`,
    async run(args, ctx) {
      const { agent } = ctx.caller;
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(args.headers ?? {})) headers[k.toLowerCase()] = v;
      let payload: Buffer | undefined;
      if (args.body !== undefined && args.method !== 'GET' && args.method !== 'HEAD') {
        payload = Buffer.from(typeof args.body === 'string' ? args.body : JSON.stringify(args.body), 'utf8');
        if (typeof args.body !== 'string') headers['content-type'] ??= 'application/json';
        if (payload.length > deps.bodyLimitBytes) throw new WarrantError('payload_too_large', `arguments.body: larger than ${deps.bodyLimitBytes} bytes`, { field: 'arguments.body' });
        headers['content-length'] = String(payload.length);
      }
      const query = new URLSearchParams();
      for (const [k, v] of Object.entries(args.query ?? {})) for (const one of [v].flat()) query.append(k, one);
      // The proxy's own limits, as for /v1/proxy: per agent, and per connection only when granted.
      const granted = agent.grants.some((g) => g.connection_id === args.connection);
      const permit = deps.limits ? await deps.limits.admit(agent.id, granted ? args.connection : undefined) : undefined;
      try {
        const res = await deps.forwarder.forward({
          requestId: ctx.requestId,
          agent,
          connectionId: args.connection,
          method: args.method,
          rawPath: args.path,
          rawQuery: query.toString(),
          headers,
          body: payload ? Readable.from([payload]) : undefined,
        });
        const { bytes, truncated } = await firstBytes(res.body, deps.responseLimitBytes);
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) out[k] = Array.isArray(v) ? v.join(', ') : String(v);
        const contentType = out['content-type'] ?? '';
        if (res.status >= 400 && /application\/problem\+json/i.test(contentType)) {
          // The forwarder's own typed answer (upstream_auth_failed): a failure the model must see as one.
          const problem = JSON.parse(bytes.toString('utf8')) as { detail?: string; upstream_status?: number; upstream_body?: string };
          const members = { upstream_status: problem.upstream_status, ...(problem.upstream_body !== undefined ? { upstream_body: problem.upstream_body } : {}) };
          throw new WarrantError('upstream_auth_failed', problem.detail, members, { status: res.status });
        }
        const asText = !contentType || textual.test(contentType);
        return { status: res.status, headers: out, body: bytes.toString(asText ? 'utf8' : 'base64'), body_encoding: asText ? ('text' as const) : ('base64' as const), truncated };
      } finally {
        permit?.release();
      }
    },
  });
}
