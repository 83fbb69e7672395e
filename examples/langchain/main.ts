/**
 * LangChain.js: a chat model bound to a `list_items` tool that reads the API through Warrant.
 *
 * The tool holds no upstream token: it calls Warrant's proxy with the agent's own key, and Warrant
 * injects (and refreshes) the connection's token. A refusal reaches the model as the typed problem
 * (`policy_denied`, `scope_insufficient`, `reauth_required` …, with the next step), never as an
 * empty success.
 *
 *   WARRANT_URL, WARRANT_AGENT_KEY, WARRANT_CONNECTION   where and as whom to call
 *   OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL        the model (unset OPENAI_BASE_URL for OpenAI's)
 */
import { ChatOpenAI } from '@langchain/openai';
import { HumanMessage, SystemMessage, type BaseMessage } from '@langchain/core/messages';
import { tool } from '@langchain/core/tools';
import { z } from 'zod';
import { UpstreamHttpError, Warrant, WarrantError } from '@warrant/sdk';

const connection = process.env.WARRANT_CONNECTION;
if (!connection) throw new Error('set WARRANT_CONNECTION to the connection id (con_…) the agent may use');
const warrant = new Warrant(); // WARRANT_URL and WARRANT_AGENT_KEY from the environment
const prompt = process.argv[2] ?? 'Which items are in my account? Use list_items.';

/** Warrant's refusals and upstream errors as data the model can act on; anything else is a bug. */
function asToolError(err: unknown): unknown {
  if (err instanceof WarrantError) return { error: { ...err.problem, next_step: err.nextStep } };
  if (err instanceof UpstreamHttpError) return { error: { code: 'upstream_error', status: err.status, body: err.body.slice(0, 2000) } };
  throw err;
}

const listItems = tool(async () => JSON.stringify(await warrant.json(connection, '/items').catch(asToolError)), {
  name: 'list_items',
  description: "List the items in the user's account (id, name, dates).",
  schema: z.object({}),
});

// OPENAI_API_KEY and OPENAI_BASE_URL from the environment.
const model = new ChatOpenAI({ model: process.env.OPENAI_MODEL ?? 'gpt-4o-mini' }).bindTools([listItems]);
const messages: BaseMessage[] = [
  new SystemMessage('Answer with the data your tools return. When a tool returns an error, say what it means and what to do next.'),
  new HumanMessage(prompt),
];
for (let turn = 0; turn < 5; turn++) {
  const reply = await model.invoke(messages);
  messages.push(reply);
  if (!reply.tool_calls?.length) {
    console.log(reply.text);
    process.exit(0);
  }
  for (const call of reply.tool_calls) messages.push(await listItems.invoke(call));
}
console.error('the model did not finish within 5 turns');
process.exit(1);
