/**
 * A stand-in for an OpenAI model on loopback, so the examples run without a model key: it speaks
 * the Chat Completions and Responses APIs (plain and streamed) and follows one fixed script.
 *
 *   1. While the conversation holds no tool result, it calls a tool: the one whose name the last
 *      user message mentions, else the first tool offered. Arguments: `{}`, with each required
 *      string property set to "example".
 *   2. Once a tool has answered, it replies with text: `The tool <name> answered: <output>`,
 *      the output verbatim, so whatever the tool returned (data or a typed error) is visible.
 *
 * Run it on its own with `npx tsx fake-model/server.ts [port]` and point an example at it with
 * OPENAI_BASE_URL=http://127.0.0.1:<port>/v1 and any OPENAI_API_KEY.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';

type Json = Record<string, unknown>;

export interface FakeModel {
  /** Base URL to give an OpenAI client, ending in `/v1`. */
  url: string;
  /** Every request body received, in order (for tests). */
  requests: { path: string; body: Json }[];
  close(): Promise<void>;
}

interface Tool {
  name: string;
  parameters?: { properties?: Record<string, { type?: unknown }>; required?: string[] };
}

type Step = { kind: 'call'; name: string; arguments: string } | { kind: 'text'; text: string };

const MAX_BODY = 4 * 1024 * 1024;

/** What the script says next, given the tools offered, the last user text and the tool results so far. */
function nextStep(tools: Tool[], userText: string, results: { name: string; output: string }[]): Step {
  const last = results[results.length - 1];
  if (last) return { kind: 'text', text: `The tool ${last.name} answered: ${last.output}` };
  const tool = tools.find((t) => userText.includes(t.name)) ?? tools[0];
  if (!tool) return { kind: 'text', text: 'No tool was offered, so there is nothing to call.' };
  const args: Record<string, string> = {};
  for (const key of tool.parameters?.required ?? []) {
    const type = tool.parameters?.properties?.[key]?.type;
    if (type === 'string' || (Array.isArray(type) && type.includes('string'))) args[key] = 'example';
  }
  return { kind: 'call', name: tool.name, arguments: JSON.stringify(args) };
}

const textOf = (content: unknown): string => {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === 'string' ? p : typeof (p as Json)?.text === 'string' ? (p as Json).text : '')).join('');
  return content == null ? '' : JSON.stringify(content);
};

// Chat Completions: messages with role user / assistant (tool_calls) / tool (tool_call_id).
function chatStep(body: Json): Step {
  const messages = Array.isArray(body.messages) ? (body.messages as Json[]) : [];
  const tools = (Array.isArray(body.tools) ? (body.tools as Json[]) : []).map((t) => (t.function ?? t) as Tool);
  const names = new Map<string, string>();
  const results: { name: string; output: string }[] = [];
  let userText = '';
  for (const m of messages) {
    if (m.role === 'user') {
      userText = textOf(m.content);
      results.length = 0;
    }
    for (const call of (m.tool_calls as Json[] | undefined) ?? []) names.set(String(call.id), String((call.function as Json)?.name));
    if (m.role === 'tool') results.push({ name: names.get(String(m.tool_call_id)) ?? 'tool', output: textOf(m.content) });
  }
  return nextStep(tools, userText, results);
}

// Responses: `input` is a string or items (messages, function_call, function_call_output).
function responsesStep(body: Json, called: Map<string, string>): Step {
  const input = typeof body.input === 'string' ? [{ role: 'user', content: body.input }] : Array.isArray(body.input) ? (body.input as Json[]) : [];
  const tools = (Array.isArray(body.tools) ? (body.tools as Json[]) : []).filter((t) => t.type === 'function') as unknown as Tool[];
  const names = new Map<string, string>();
  const results: { name: string; output: string }[] = [];
  let userText = '';
  for (const item of input) {
    if (item.role === 'user') {
      userText = textOf(item.content);
      results.length = 0;
    }
    if (item.type === 'function_call') names.set(String(item.call_id), String(item.name));
    if (item.type === 'function_call_output') results.push({ name: names.get(String(item.call_id)) ?? called.get(String(item.call_id)) ?? 'tool', output: textOf(item.output) });
  }
  return nextStep(tools, userText, results);
}

function chatCompletion(body: Json, step: Step, res: ServerResponse): void {
  const id = `chatcmpl-${randomUUID()}`;
  const base = { id, created: Math.floor(Date.now() / 1000), model: String(body.model ?? 'fake') };
  const usage = { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 };
  const callId = `call_${randomUUID().replaceAll('-', '')}`;
  const finish = step.kind === 'call' ? 'tool_calls' : 'stop';
  if (!body.stream) {
    const message =
      step.kind === 'call'
        ? { role: 'assistant', content: null, tool_calls: [{ id: callId, type: 'function', function: { name: step.name, arguments: step.arguments } }] }
        : { role: 'assistant', content: step.text };
    sendJson(res, { ...base, object: 'chat.completion', choices: [{ index: 0, message, finish_reason: finish, logprobs: null }], usage });
    return;
  }
  const chunk = (choices: unknown[], extra: Json = {}) => ({ ...base, object: 'chat.completion.chunk', choices, ...extra });
  const delta =
    step.kind === 'call'
      ? { role: 'assistant', content: null, tool_calls: [{ index: 0, id: callId, type: 'function', function: { name: step.name, arguments: step.arguments } }] }
      : { role: 'assistant', content: step.text };
  const events: unknown[] = [chunk([{ index: 0, delta, finish_reason: null }]), chunk([{ index: 0, delta: {}, finish_reason: finish }])];
  if ((body.stream_options as Json | undefined)?.include_usage) events.push(chunk([], { usage }));
  sendSse(res, events.map((e) => ({ data: e })).concat({ data: '[DONE]' }));
}

function response(body: Json, step: Step, res: ServerResponse, called: Map<string, string>): void {
  const callId = `call_${randomUUID().replaceAll('-', '')}`;
  const item =
    step.kind === 'call'
      ? { type: 'function_call', id: `fc_${randomUUID().replaceAll('-', '')}`, call_id: callId, name: step.name, arguments: step.arguments, status: 'completed' }
      : { type: 'message', id: `msg_${randomUUID().replaceAll('-', '')}`, role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: step.text, annotations: [] }] };
  if (step.kind === 'call') {
    called.set(callId, step.name);
    if (called.size > 1000) called.delete(called.keys().next().value!);
  }
  const full = {
    id: `resp_${randomUUID().replaceAll('-', '')}`,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status: 'completed',
    model: String(body.model ?? 'fake'),
    output: [item],
    parallel_tool_calls: true,
    tool_choice: 'auto',
    tools: body.tools ?? [],
    error: null,
    incomplete_details: null,
    usage: { input_tokens: 10, input_tokens_details: { cached_tokens: 0 }, output_tokens: 10, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 20 },
  };
  if (!body.stream) return sendJson(res, full);
  let seq = 0;
  const ev = (type: string, data: Json) => ({ event: type, data: { type, sequence_number: seq++, ...data } });
  const events = [ev('response.created', { response: { ...full, status: 'in_progress', output: [] } })];
  events.push(ev('response.output_item.added', { output_index: 0, item: step.kind === 'call' ? { ...item, arguments: '' } : { ...item, content: [] } }));
  if (step.kind === 'call') {
    events.push(ev('response.function_call_arguments.delta', { item_id: item.id, output_index: 0, delta: step.arguments }));
    events.push(ev('response.function_call_arguments.done', { item_id: item.id, output_index: 0, arguments: step.arguments }));
  } else {
    events.push(ev('response.content_part.added', { item_id: item.id, output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } }));
    events.push(ev('response.output_text.delta', { item_id: item.id, output_index: 0, content_index: 0, delta: step.text, logprobs: [] }));
    events.push(ev('response.output_text.done', { item_id: item.id, output_index: 0, content_index: 0, text: step.text, logprobs: [] }));
    events.push(ev('response.content_part.done', { item_id: item.id, output_index: 0, content_index: 0, part: { type: 'output_text', text: step.text, annotations: [] } }));
  }
  events.push(ev('response.output_item.done', { output_index: 0, item }));
  events.push(ev('response.completed', { response: full }));
  sendSse(res, events);
}

function sendJson(res: ServerResponse, body: unknown, status = 200): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function sendSse(res: ServerResponse, events: { event?: string; data: unknown }[]): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const e of events) res.write(`${e.event ? `event: ${e.event}\n` : ''}data: ${typeof e.data === 'string' ? e.data : JSON.stringify(e.data)}\n\n`);
  res.end();
}

function readBody(req: IncomingMessage): Promise<Json> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy(new Error('request body too large'));
      else chunks.push(c);
    });
    req.on('end', () => {
      try {
        const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
        resolve(parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Json) : {});
      } catch (err) {
        reject(err);
      }
    });
    req.on('error', reject);
  });
}

export async function startFakeModel(port = 0, host = '127.0.0.1'): Promise<FakeModel> {
  const requests: FakeModel['requests'] = [];
  // Tool calls this server made, by call id and item id: a Responses client may send back
  // `{type: "item_reference", id}` instead of the call itself.
  const called = new Map<string, string>();
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/\/+$/, '');
    if (req.method === 'GET' && path === '/v1/models') return sendJson(res, { object: 'list', data: [{ id: 'fake', object: 'model', owned_by: 'warrant-examples' }] });
    if (req.method !== 'POST' || (path !== '/v1/chat/completions' && path !== '/v1/responses')) {
      return sendJson(res, { error: { message: `the fake model does not serve ${req.method} ${path}`, type: 'invalid_request_error' } }, 404);
    }
    readBody(req).then(
      (body) => {
        requests.push({ path, body });
        if (path === '/v1/chat/completions') chatCompletion(body, chatStep(body), res);
        else response(body, responsesStep(body, called), res, called);
      },
      () => sendJson(res, { error: { message: 'the body is not JSON', type: 'invalid_request_error' } }, 400),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${bound}/v1`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const model = await startFakeModel(Number(process.argv[2] ?? 0));
  console.log(`fake model listening: OPENAI_BASE_URL=${model.url} OPENAI_API_KEY=fake`);
  process.once('SIGINT', () => void model.close().then(() => process.exit(0)));
  process.once('SIGTERM', () => void model.close().then(() => process.exit(0)));
}
