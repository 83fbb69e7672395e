/**
 * OpenAI function calling: the model asks for `list_items`, the tool reads the API through
 * Warrant, the answer goes back to the model.
 *
 * The program holds no upstream token: the tool calls Warrant's proxy with the agent's own key
 * and Warrant injects (and refreshes) the connection's token. When Warrant refuses, the model
 * gets the typed problem (`policy_denied`, `scope_insufficient`, `reauth_required` …, with what
 * to do next), never an empty success it could mistake for data.
 *
 *   WARRANT_URL, WARRANT_AGENT_KEY, WARRANT_CONNECTION   where and as whom to call
 *   OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL        the model (unset OPENAI_BASE_URL for OpenAI's)
 */
import OpenAI from 'openai';
import type { ChatCompletionMessageParam, ChatCompletionTool } from 'openai/resources/chat/completions';
import { UpstreamHttpError, Warrant, WarrantError } from '@warrant/sdk';

const connection = process.env.WARRANT_CONNECTION;
if (!connection) throw new Error('set WARRANT_CONNECTION to the connection id (con_…) the agent may use');
const warrant = new Warrant(); // WARRANT_URL and WARRANT_AGENT_KEY from the environment
const openai = new OpenAI(); // OPENAI_API_KEY and OPENAI_BASE_URL from the environment
const model = process.env.OPENAI_MODEL ?? 'gpt-4o-mini';
const prompt = process.argv[2] ?? 'Which items are in my account? Use list_items.';

const tools: ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'list_items',
      description: "List the items in the user's account (id, name, dates).",
      parameters: { type: 'object', properties: {}, additionalProperties: false },
    },
  },
];

async function listItems(): Promise<unknown> {
  try {
    return await warrant.json(connection!, '/items');
  } catch (err) {
    return asToolError(err);
  }
}

/** Warrant's refusals and upstream errors as data the model can act on; anything else is a bug. */
function asToolError(err: unknown): unknown {
  if (err instanceof WarrantError) return { error: { ...err.problem, next_step: err.nextStep } };
  if (err instanceof UpstreamHttpError) return { error: { code: 'upstream_error', status: err.status, body: err.body.slice(0, 2000) } };
  throw err;
}

const messages: ChatCompletionMessageParam[] = [{ role: 'user', content: prompt }];
for (let turn = 0; turn < 5; turn++) {
  const completion = await openai.chat.completions.create({ model, messages, tools });
  const message = completion.choices[0]?.message;
  if (!message) throw new Error('the model answered no choice');
  messages.push(message);
  if (!message.tool_calls?.length) {
    console.log(message.content ?? '');
    process.exit(0);
  }
  for (const call of message.tool_calls) {
    if (call.type !== 'function') continue;
    const result = call.function.name === 'list_items' ? await listItems() : { error: { code: 'unknown_tool', tool: call.function.name } };
    console.error(`[tool] ${call.function.name} -> ${JSON.stringify(result).slice(0, 200)}`);
    messages.push({ role: 'tool', tool_call_id: call.id, content: JSON.stringify(result) });
  }
}
console.error('the model did not finish within 5 turns');
process.exit(1);
