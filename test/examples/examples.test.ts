import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startLifecycle, eventually, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { startFakeModel, type FakeModel } from '../../examples/fake-model/server.ts';

// Each example under examples/ runs as its own process, as a user would run it: the model side is
// the fake model server (OpenAI's wire format on loopback), the auth side is real (Warrant and
// the sandbox IdP + API). The sandbox's items reaching the model's answer prove the tool went
// through the proxy; the audit log must show that agent's proxied call.

const root = fileURLToPath(new URL('../../', import.meta.url));
const tsx = import.meta.resolve('tsx');
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const RUN_TIMEOUT_MS = 20_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runExample(name: string, env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', tsx, `examples/${name}/main.ts`], {
      cwd: root,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not finish in ${RUN_TIMEOUT_MS} ms; stdout=${stdout} stderr=${stderr}`));
    }, RUN_TIMEOUT_MS);
    child.on('error', (err) => (clearTimeout(timer), reject(err)));
    child.on('exit', (code) => (clearTimeout(timer), resolve({ code, stdout, stderr })));
  });
}

describe('examples/: each agent framework calls the sandbox API through Warrant, the model stubbed, the auth real', () => {
  let env: LifecycleEnv;
  let model: FakeModel;
  let base: string;
  let conn: string;

  async function createAgent(name: string, scopes: string[]): Promise<{ id: string; key: string }> {
    const res = await env.warrant.app.inject({ method: 'POST', url: '/v1/agents', headers: admin, payload: { name, owner: 'alice@example.com', grants: [{ connection: conn, scopes }] } });
    assert.equal(res.statusCode, 201, res.body);
    return { id: res.json().id, key: res.json().api_key };
  }

  /** The agent's proxied calls in the audit log (each example runs under its own agent). */
  async function proxiedCalls(agentId: string, minimum = 1) {
    return eventually(async () => {
      await env.warrant.auditQueue.flush();
      const entries = await env.warrant.audit.query({ type: 'proxy.call', actor: `agent:${agentId}`, limit: 100 });
      return entries.length >= minimum ? entries : undefined;
    });
  }

  async function run(example: string, agent: { key: string }, extra: Record<string, string> = {}): Promise<Run> {
    const result = await runExample(example, {
      WARRANT_URL: base,
      WARRANT_AGENT_KEY: agent.key,
      WARRANT_CONNECTION: conn,
      OPENAI_BASE_URL: model.url,
      OPENAI_API_KEY: 'fake-model-key',
      ...extra,
    });
    assert.equal(result.code, 0, `${example} exited ${result.code}; stdout=${result.stdout} stderr=${result.stderr}`);
    assert.ok(!`${result.stdout}${result.stderr}`.includes(agent.key), 'the agent key is never printed');
    return result;
  }

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 60 } });
    base = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
    conn = await env.connect('alice@example.com', ['items:read', 'items:write']);
    model = await startFakeModel();
  });
  after(async () => {
    await model?.close();
    await env?.cleanup();
  });

  for (const example of ['openai-function-calling', 'openai-agents', 'vercel-ai', 'langchain', 'mastra']) {
    test(`${example}: the model calls list_items, the items come from the sandbox API through the proxy, the audit shows the agent's call`, async () => {
      const agent = await createAgent(example, ['items:read']);
      const before = model.requests.length;
      const { stdout } = await run(example, agent);
      assert.match(stdout, /The tool list_items answered:/, 'the final answer is the model\'s, made from the tool result');
      assert.match(stdout, /first item/);
      assert.match(stdout, /second item/);
      assert.ok(model.requests.length - before >= 2, 'one model call asked for the tool, one answered with its result');
      const [call] = await proxiedCalls(agent.id);
      assert.equal(call!.subject, `connection:${conn}`);
      assert.deepEqual({ method: call!.data.method, path: call!.data.path, status: call!.data.status }, { method: 'GET', path: '/items', status: 200 });
    });
  }

  test('openai-function-calling: a grant without items:read → the model gets the typed policy_denied problem as the tool result, and the upstream is never called', async () => {
    const agent = await createAgent('write-only', ['items:write']);
    env.sandbox.resetStats();
    const { stdout } = await run('openai-function-calling', agent);
    assert.match(stdout, /The tool list_items answered:/);
    const answered = JSON.parse(stdout.slice(stdout.indexOf('{')).trim()) as { error: Record<string, unknown> };
    assert.equal(answered.error.code, 'policy_denied');
    assert.equal(answered.error.status, 403);
    assert.deepEqual(answered.error.granted_scopes, ['items:write']);
    assert.match(String(answered.error.next_step), /grant/);
    assert.doesNotMatch(stdout, /first item/, 'no data reached the model');
    assert.equal(env.sandbox.stats().apiRequests, 0, 'Warrant refused before the upstream');
  });

  test('vercel-ai: the IdP granted less than the grant claims → scope_insufficient with the required scope reaches the model', async () => {
    // The owner consented to items:write only; the grant is imported claiming items:read too.
    const thin = await env.connect('frank@example.com', ['items:write']);
    const secrets = await env.warrant.store.vault.getAll('connection', thin);
    const imported = await env.warrant.app.inject({
      method: 'POST',
      url: '/v1/connections',
      headers: admin,
      payload: { provider: 'sandbox', owner: 'frank@example.com', access_token: secrets.access_token, refresh_token: secrets.refresh_token, expires_in: 60, scopes: ['items:read', 'items:write'] },
    });
    assert.equal(imported.statusCode, 201, imported.body);
    const id = imported.json().id as string;
    const res = await env.warrant.app.inject({ method: 'POST', url: '/v1/agents', headers: admin, payload: { name: 'overreach', owner: 'frank@example.com', grants: [{ connection: id, scopes: ['items:read'] }] } });
    assert.equal(res.statusCode, 201, res.body);
    const { stdout } = await run('vercel-ai', { key: res.json().api_key }, { WARRANT_CONNECTION: id });
    const answered = JSON.parse(stdout.slice(stdout.indexOf('{')).trim()) as { error: Record<string, unknown> };
    assert.equal(answered.error.code, 'scope_insufficient');
    assert.equal(answered.error.required_scope, 'items:read');
    assert.match(String(answered.error.next_step), /connect again/);
  });

  test('mcp-client: the config file names /mcp/warrant and a gateway /mcp/{server}; the SDK client lists the tools and calls the API through call_api', async () => {
    const config = JSON.parse(readFileSync(`${root}examples/mcp-client/mcp.json`, 'utf8')) as { mcpServers: Record<string, { url: string; headers?: Record<string, string> }> };
    assert.equal(config.mcpServers.warrant?.url, '${env:WARRANT_URL}/mcp/warrant');
    assert.equal(config.mcpServers.warrant?.headers?.Authorization, 'Bearer ${env:WARRANT_AGENT_KEY}');
    assert.ok(Object.values(config.mcpServers).some((s) => /\/mcp\/(?!warrant$)[a-z0-9-]+$/.test(s.url) && !s.headers), 'a gateway entry, OAuth only');
    const desktop = JSON.parse(readFileSync(`${root}examples/mcp-client/claude_desktop_config.json`, 'utf8')) as { mcpServers: Record<string, { args: string[] }> };
    assert.ok(desktop.mcpServers.warrant?.args.some((a) => a.endsWith('/mcp/warrant')));

    const agent = await createAgent('mcp-client', ['items:read']);
    const { stdout } = await run('mcp-client', agent);
    assert.match(stdout, /tools: .*call_api/);
    assert.match(stdout, /list_connections: .*"id":"con_/);
    assert.match(stdout, /call_api GET \/items -> 200/);
    assert.match(stdout, /first item/);
    const [call] = await proxiedCalls(agent.id);
    assert.deepEqual({ method: call!.data.method, path: call!.data.path, status: call!.data.status }, { method: 'GET', path: '/items', status: 200 });
  });
});
