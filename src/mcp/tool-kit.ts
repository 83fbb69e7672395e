import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import { WarrantError, invalidRequest, isWarrantError } from '../errors/index.ts';
import { createAuditHmac, type AuditQueue } from '../events/index.ts';
import type { McpCaller, McpScope } from './caller.ts';

// What every tool of /mcp/warrant shares: a zod input schema (the JSON Schema the model reads is
// made from it), a typed result, the Warrant scope it needs, and one audited way to run it. A
// failure is a tool result, not a protocol error: `isError: true` with the problem (code, status,
// detail and the members that say what to do: required_scope, reauth_url, retry_after) as JSON,
// so the model can act on it.

export interface ToolContext {
  caller: McpCaller;
  requestId: string;
}

export interface ToolDef<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  name: string;
  title: string;
  description: string;
  scope: McpScope;
  input: I;
  output: O;
  annotations?: Tool['annotations'];
  /** What the call is about (`connection:con_…`), the audit entry's subject. */
  subjectOf?(args: z.output<I>): string | undefined;
  run(args: z.output<I>, ctx: ToolContext): Promise<z.output<O>>;
}

export const defineTool = <I extends z.ZodType, O extends z.ZodType>(def: ToolDef<I, O>): ToolDef => def as unknown as ToolDef;

/** The first failing field of the arguments as `arguments.path.to[0].field`. */
function fieldOf(issue: z.core.$ZodIssue): string {
  let field = 'arguments';
  for (const p of issue.path) field += typeof p === 'number' ? `[${p}]` : `.${String(p)}`;
  if (issue.code === 'unrecognized_keys' && issue.keys[0] && /^[A-Za-z0-9_$-]{1,32}$/.test(issue.keys[0])) return `${field}.${issue.keys[0]}`;
  return field;
}

function invalidArguments(error: z.ZodError): WarrantError {
  const issue = error.issues[0]!;
  return invalidRequest(fieldOf(issue), issue.code === 'unrecognized_keys' ? 'is not a known argument' : issue.message);
}

/** JSON with its object keys sorted, so equal arguments hash equal whatever their order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The audit entry's `arguments_hash`: an HMAC (not a bare hash, which a guessable argument such
 * as a short body could be found from) under a key derived from the audit chain key
 * (events/audit-hmac.ts, kind `arguments`), so every
 * instance computes the same value and anyone holding the store can check a claimed set of
 * arguments against it. The arguments themselves are never written.
 */
export function argumentsHasher(chainKey: KeyObject): (args: unknown) => string {
  const hmac = createAuditHmac(chainKey);
  return (args) => hmac('arguments', canonicalJson(args ?? {}));
}

export const problemResult = (err: WarrantError, requestId: string): CallToolResult => ({
  content: [{ type: 'text', text: JSON.stringify(err.toProblem(requestId)) }],
  isError: true,
});

const jsonSchemaOf = (schema: z.ZodType, io: 'input' | 'output') => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest as Tool['inputSchema'];
};

export function createToolRunner(deps: {
  tools: ToolDef[];
  auditQueue: Pick<AuditQueue, 'reserve'>;
  hashArguments(args: unknown): string;
  logger: Logger;
  deadlineMs: number;
}) {
  const byName = new Map(deps.tools.map((t) => [t.name, t]));
  const listing: Tool[] = deps.tools.map((t) => ({
    name: t.name,
    title: t.title,
    description: t.description,
    inputSchema: jsonSchemaOf(t.input, 'input'),
    outputSchema: jsonSchemaOf(t.output, 'output'),
    ...(t.annotations ? { annotations: t.annotations } : {}),
  }));

  async function runWithDeadline<T>(work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new WarrantError('unavailable', `the tool did not finish within ${deps.deadlineMs} ms`, { retry_after: 1 })), deps.deadlineMs);
    });
    try {
      return await Promise.race([work, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    list: (): Tool[] => listing,
    /** The scope a tool needs; undefined for an unknown tool. */
    scopeOf: (name: string): McpScope | undefined => byName.get(name)?.scope,

    /** Runs one tool call, audited whatever its outcome (an unknown tool and bad arguments included). */
    async call(name: string, rawArgs: unknown, ctx: ToolContext): Promise<CallToolResult> {
      const started = performance.now();
      const { agent } = ctx.caller;
      const reservation = deps.auditQueue.reserve(agent.id);
      if (!reservation) {
        return problemResult(new WarrantError('unavailable', 'the audit log cannot be written right now; Warrant refuses calls it cannot record', { retry_after: 1 }), ctx.requestId);
      }
      const tool = byName.get(name);
      let subject: string | undefined;
      let code: string | null = null;
      try {
        if (!tool) throw invalidRequest('name', `no tool ${name.slice(0, 64)} here; tools/list names them`);
        if (!ctx.caller.scopes.includes(tool.scope)) {
          throw new WarrantError('policy_denied', `this credential does not carry the ${tool.scope} scope ${tool.name} needs`, { required_scope: tool.scope });
        }
        const parsed = tool.input.safeParse(rawArgs ?? {});
        if (!parsed.success) throw invalidArguments(parsed.error);
        subject = tool.subjectOf?.(parsed.data);
        const out = await runWithDeadline(tool.run(parsed.data, ctx));
        return { content: [{ type: 'text', text: JSON.stringify(out) }], structuredContent: out as Record<string, unknown> };
      } catch (err) {
        const problem = isWarrantError(err) ? err : new WarrantError('internal_error', undefined, {}, { cause: err });
        code = problem.code;
        if (problem.code === 'internal_error') deps.logger.error({ err, tool: name.slice(0, 64), request_id: ctx.requestId }, 'mcp tool failed');
        return problemResult(problem, ctx.requestId);
      } finally {
        reservation.commit({
          type: 'mcp.tool_call',
          actor: `agent:${agent.id}`,
          ...(subject ? { subject } : {}),
          data: {
            tool: tool ? tool.name : name.slice(0, 64),
            arguments_hash: deps.hashArguments(rawArgs),
            outcome: code ? 'error' : 'ok',
            code,
            via: ctx.caller.via,
            duration_ms: Math.round((performance.now() - started) * 10) / 10,
            request_id: ctx.requestId,
          },
        });
      }
    },
  };
}

export type ToolRunner = ReturnType<typeof createToolRunner>;
