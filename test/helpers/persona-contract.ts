import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant, type Warrant } from '../../src/warrant.ts';
import { ADMIN_TOKEN, captureLogger } from './app.ts';

// A persona contract rig: one sandbox per persona, and one Warrant (embedded SQLite) whose
// WARRANT_PROVIDERS file lists each persona's definition — the real catalog entry with `extends`,
// every URL pointed at that sandbox. Everything the tests do goes through Warrant's public HTTP
// API, as an admin, a browser and an agent would.

export interface Reply {
  status: number;
  headers: Headers;
  /** The JSON body, or the text when it is not JSON. */
  body: any;
}

export interface PersonaRig {
  warrant: Warrant;
  base: string;
  logs: ReturnType<typeof captureLogger>;
  sandbox(persona: string): Sandbox;
  /** An admin call (bearer: the admin token). */
  admin(method: string, path: string, body?: unknown): Promise<Reply>;
  /** Connects as a browser would; returns the connection id. */
  connect(provider: string, scopes: string[], opts?: { owner?: string; params?: Record<string, string>; environment?: string }): Promise<string>;
  /** A new agent holding the given grants; returns its API key. */
  agent(grants: { connection: string; scopes: string[]; token_export?: boolean }[], owner?: string): Promise<string>;
  /** `ANY /v1/proxy/{connection}/{path}` with the agent's key. */
  proxy(key: string, connection: string, method: string, path: string, init?: { json?: unknown; form?: Record<string, string>; headers?: Record<string, string> }): Promise<Reply>;
  /** The connection's params as stored (tenant ids, instance URLs): the public connection view does not show them. */
  params(connection: string): Promise<Record<string, string>>;
  /** The connection's current access token, through the token-export API (the agent needs `token_export`). */
  exportToken(key: string, connection: string): Promise<string>;
  cleanup(): Promise<void>;
}

export interface RigPersona {
  persona: string;
  /** Provider id in Warrant (default: the catalog entry's). */
  id?: string;
  extends?: string;
  /** Fields merged over the persona's definition (a documented override a test needs). */
  override?: (sandbox: Sandbox) => Record<string, unknown>;
}

const owner = 'alice@example.com';

async function request(url: string, init: { method?: string; headers?: Record<string, string>; json?: unknown; form?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...init.headers };
  let body: string | undefined;
  if (init.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(init.json);
  } else if (init.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(init.form).toString();
  }
  const res = await fetch(url, { method: init.method ?? 'GET', headers, body, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON: the text */
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** `env`: Warrant's configuration; `providerEnv`: what `${env:NAME}` references in definitions read (QuickBooks sandbox keys). */
export async function startPersonaRig(list: RigPersona[], env: Record<string, string> = {}, providerEnv: Record<string, string> = {}): Promise<PersonaRig> {
  const sandboxes = new Map<string, Sandbox>();
  const dir = mkdtempSync(join(tmpdir(), 'warrant-contract-'));
  try {
    const definitions: Record<string, unknown>[] = [];
    for (const p of list) {
      const sandbox = await startSandbox({ persona: p.persona });
      sandboxes.set(p.persona, sandbox);
      definitions.push({ ...sandbox.persona!.providerDefinition({ id: p.id, extends: p.extends }), ...p.override?.(sandbox) });
    }
    const providersFile = join(dir, 'personas.yaml');
    writeFileSync(providersFile, stringify(definitions));
    const logs = captureLogger('warn');
    const config = loadConfig({
      WARRANT_DATA_DIR: dir,
      WARRANT_ADMIN_TOKEN: ADMIN_TOKEN,
      WARRANT_MASTER_KEY: `k1:${randomBytes(32).toString('base64')}`,
      WARRANT_PORT: '0',
      WARRANT_PROVIDERS: providersFile,
      WARRANT_HTTP_TIMEOUT_MS: '5000',
      ...env,
    });
    const warrant = await createWarrant(config, { logger: logs.logger, notice: () => {}, scheduler: false, env: providerEnv });
    await warrant.listen();
    const base = `http://127.0.0.1:${(warrant.app.server.address() as { port: number }).port}`;
    const adminHeaders = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const admin = (method: string, path: string, json?: unknown) => request(`${base}${path}`, { method, json, headers: adminHeaders });
    const expect = (r: Reply, status: number, what: string) => {
      if (r.status !== status) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
      return r;
    };
    let agents = 0;

    return {
      warrant,
      base,
      logs,
      sandbox(persona) {
        const s = sandboxes.get(persona);
        if (!s) throw new Error(`no sandbox for persona ${persona}`);
        return s;
      },
      admin,
      async connect(provider, scopes, opts = {}) {
        const started = expect(await admin('POST', '/v1/connect-sessions', { provider, owner: opts.owner ?? owner, scopes, params: opts.params, environment: opts.environment }), 201, 'connect session').body;
        // The browser: Warrant's start URL sets the binding cookie and redirects to the IdP ... (Warrant's
        // public URL says port 0, the port asked for: its links are opened at the bound port.)
        const start = new URL(started.authorize_url);
        const opened = expect(await request(`${base}${start.pathname}${start.search}`), 302, 'start URL');
        const cookie = opened.headers.get('set-cookie')!.split(';')[0]!;
        const idp = opened.headers.get('location')!;
        const persona = [...sandboxes.values()].find((s) => idp.startsWith(new URL(s.issuer).origin));
        if (!persona?.persona) throw new Error(`the authorization URL leads to no persona sandbox: ${new URL(idp).origin}`);
        // ... the persona consents at once and redirects back to Warrant's callback ...
        const callback = new URL(await persona.persona.follow(idp));
        // ... which the browser opens.
        const back = expect(await request(`${base}${callback.pathname}${callback.search}`, { headers: { cookie } }), 200, 'callback');
        const session = expect(await admin('GET', `/v1/connect-sessions/${started.id}`), 200, 'session').body;
        if (session.status !== 'completed' || !session.connection_id) throw new Error(`connect failed: ${JSON.stringify(session)} ${String(back.body).slice(0, 300)}`);
        return session.connection_id as string;
      },
      async agent(grants, agentOwner = owner) {
        agents += 1;
        const r = expect(await admin('POST', '/v1/agents', { name: `contract-agent-${agents}`, owner: agentOwner, grants }), 201, 'agent');
        return r.body.api_key as string;
      },
      proxy(key, connection, method, path, init = {}) {
        return request(`${base}/v1/proxy/${connection}${path}`, { method, ...init, headers: { ...init.headers, authorization: `Bearer ${key}` } });
      },
      async params(connection) {
        const row = await warrant.store.connections.get(connection);
        if (!row) throw new Error(`no connection ${connection}`);
        return typeof row.params === 'string' ? JSON.parse(row.params) : (row.params as Record<string, string>);
      },
      async exportToken(key, connection) {
        const r = expect(await request(`${base}/v1/connections/${connection}/token`, { headers: { authorization: `Bearer ${key}` } }), 200, 'token export');
        return r.body.access_token as string;
      },
      async cleanup() {
        await warrant.close();
        await Promise.all([...sandboxes.values()].map((s) => s.close()));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all([...sandboxes.values()].map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
