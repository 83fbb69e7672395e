// The load: agents calling Warrant on random instances and connections, bounded in flight and in
// rate, every answer recorded with its time so faults can be told from bugs afterwards.
import { Agent, request } from 'undici';
import { sleep, type Instance } from './procs.ts';

export type Op = 'proxy_whoami' | 'proxy_items' | 'export' | 'export_use' | 'lease';

export interface CallRecord {
  /** Start and end, epoch ms. */
  t0: number;
  t1: number;
  inst: number;
  conn: number;
  agent: number;
  op: Op;
  status: number;
  /** `ok` for 2xx; the problem `code`; `http_<status>` for a non-problem answer; `net_<code>` when
   *  the call never got an answer; `client_timeout` when none came within the client's deadline. */
  code: string;
}

export interface SoakAgent {
  index: number;
  id: string;
  key: string;
  tokenExport: boolean;
  /** Indexes into the connection list. */
  conns: number[];
}

export interface World {
  instances: Instance[];
  /** False while an instance is known to be down (killed, restarting): the balancer skips it. */
  up: boolean[];
  agents: SoakAgent[];
  connectionIds: string[];
  sandboxApi: string;
}

export interface LoadOptions {
  concurrency: number;
  /** Calls started per second, at most. */
  rate: number;
  /** A call with no answer after this long counts as `client_timeout` (a hang). */
  callTimeoutMs: number;
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

function codeOfError(err: unknown): string {
  const code = String((err as { code?: unknown }).code ?? (err as { cause?: { code?: unknown } }).cause?.code ?? 'unknown');
  if (/TIMEOUT/i.test(code) || (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError') return 'client_timeout';
  return `net_${code}`;
}

async function codeOfAnswer(status: number, body: { text(): Promise<string>; dump(): Promise<void> }): Promise<string> {
  if (status >= 200 && status < 300) {
    await body.dump();
    return 'ok';
  }
  const text = await body.text();
  try {
    const code = (JSON.parse(text) as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  } catch {
    // not JSON: an upstream answer passed through as-is
  }
  return `http_${status}`;
}

export function startLoad(world: World, opts: LoadOptions) {
  const dispatcher = new Agent({ connections: opts.concurrency, keepAliveTimeout: 4_000, headersTimeout: opts.callTimeoutMs, bodyTimeout: opts.callTimeoutMs });
  const records: CallRecord[] = [];
  let stopped = false;
  let nextSlot = Date.now();

  async function call(url: string, method: 'GET' | 'POST', headers: Record<string, string>, body?: string, wantJson = false): Promise<{ status: number; code: string; json?: any }> {
    try {
      const res = await request(url, { method, headers, body, dispatcher, signal: AbortSignal.timeout(opts.callTimeoutMs) });
      if (res.statusCode === 200 && wantJson) {
        const json = await res.body.json();
        return { status: 200, code: 'ok', json };
      }
      return { status: res.statusCode, code: await codeOfAnswer(res.statusCode, res.body) };
    } catch (err) {
      return { status: 0, code: codeOfError(err) };
    }
  }

  async function one(): Promise<void> {
    const agent = pick(world.agents);
    const conn = pick(agent.conns);
    const live = world.instances.map((_, i) => i).filter((i) => world.up[i]);
    if (!live.length) return sleep(100);
    const inst = pick(live);
    const origin = world.instances[inst]!.origin;
    const id = encodeURIComponent(world.connectionIds[conn]!);
    const auth = { authorization: `Bearer ${agent.key}` };
    const r = Math.random();
    // 20% token export (agents allowed to; the others call whoami instead), 15% leases, 15% items.
    const op: Op = r < 0.2 ? (agent.tokenExport ? 'export' : 'proxy_whoami') : r < 0.35 ? 'lease' : r < 0.5 ? 'proxy_items' : 'proxy_whoami';
    const t0 = Date.now();
    let out: { status: number; code: string; json?: any };
    if (op === 'export') out = await call(`${origin}/v1/connections/${id}/token`, 'GET', auth, undefined, true);
    else if (op === 'lease') {
      // min_ttl below the 10 s lifetime, so a lease refreshes only a token in its last seconds.
      const body = JSON.stringify({ min_ttl: 1 + Math.floor(Math.random() * 3) });
      out = await call(`${origin}/v1/connections/${id}/lease`, 'POST', { ...auth, 'content-type': 'application/json' }, body);
    } else out = await call(`${origin}/v1/proxy/${id}/${op === 'proxy_items' ? 'items' : 'whoami'}`, 'GET', auth);
    records.push({ t0, t1: Date.now(), inst, conn, agent: agent.index, op, status: out.status, code: out.code });
    // Half the exported tokens are used at the API at once: a token handed out must work there.
    if (op === 'export' && out.json?.access_token && Math.random() < 0.5) {
      const u0 = Date.now();
      const used = await call(`${world.sandboxApi}/whoami`, 'GET', { authorization: `Bearer ${out.json.access_token}` });
      records.push({ t0: u0, t1: Date.now(), inst, conn, agent: agent.index, op: 'export_use', status: used.status, code: used.code === 'ok' ? 'ok' : `exported_token_${used.status || used.code}` });
    }
  }

  async function worker(): Promise<void> {
    while (!stopped) {
      const now = Date.now();
      const slot = Math.max(nextSlot, now);
      nextSlot = slot + 1000 / opts.rate;
      if (slot > now) await sleep(slot - now);
      if (stopped) break;
      await one();
    }
  }

  const workers = Array.from({ length: opts.concurrency }, () => worker());
  return {
    records,
    async stop(): Promise<void> {
      stopped = true;
      await Promise.all(workers);
      await dispatcher.close();
    },
  };
}
