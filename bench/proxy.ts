// What Warrant's authenticated proxy costs on top of a proxy that does nothing else. Three targets,
// all serving the same sandbox API answer (GET /items: two items, a few hundred bytes of JSON):
//   (a) the sandbox API called directly, with a valid bearer token;
//   (b) a bare pass-through: a node:http server that only replaces the Authorization header and
//       forwards to the sandbox API with an undici Pool, streaming the answer back;
//   (c) Warrant's proxy, GET /v1/proxy/{connection}/items with an agent key: agent auth, token
//       cache, target resolution, scope policy, response inspection, audit (batched into the
//       default embedded SQLite store);
//   (f) only when asked (--targets a,b,f,c): the same pass-through as (b) on Fastify, to tell the
//       framework's share of (c) − (b) from Warrant's own work.
// Each is measured at concurrency 1 (latency) and at a higher concurrency (throughput), in
// interleaved rounds so drift on a shared machine hits all of them alike.
//
//   node --import tsx bench/proxy.ts [--concurrency 1,32] [--rounds 5] [--round-seconds 2]
//                                    [--warm-seconds 1] [--targets a,b,c] [--json]
//
// Process layout: the sandbox, the pass-throughs and Warrant share this process (one event loop,
// about one core); the load generator is a child process (the other core), so the client never
// competes inside the servers' event loop. The sandbox in the same loop means every proxied
// request also pays for the sandbox: (b) and (c) carry the same upstream cost, so c/b compares
// the proxies plus that common part. The server CPU per request shows the proxies' own costs on
// their own: (b) − (a) and (c) − (a).
import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';
import type { OutgoingHttpHeaders } from 'node:http';
import { Pool } from 'undici';

// ---------------------------------------------------------------------------------------------
// The load generator (child process)
// ---------------------------------------------------------------------------------------------

interface RunRequest {
  type: 'run';
  id: number;
  origin: string;
  path: string;
  headers: Record<string, string>;
  concurrency: number;
  /** Requests that end before this (ms after the start) are not recorded: connections, JIT. */
  warmMs: number;
  /** The recorded window after the warm-up. */
  durationMs: number;
}

interface RunResult {
  type: 'result';
  id: number;
  /** Requests completed inside the window. */
  count: number;
  /** Requests completed in the whole run, warm-up included. */
  total: number;
  /** Non-200 answers or failures, anywhere in the run (must be 0). */
  errors: number;
  firstError?: string;
  windowMs: number;
  /** Latency of each request completed in the window, ms (request sent → body fully read). */
  latencies: Float64Array;
  /** The load generator's own CPU during the run, ms. */
  clientCpuMs: number;
}

async function loadWorker(): Promise<void> {
  // One pool per (origin, concurrency), kept for the whole run: keep-alive connections are
  // reused from round to round, as a real client would.
  const pools = new Map<string, Pool>();
  process.on('message', async (msg: RunRequest | { type: 'exit' }) => {
    if (msg.type === 'exit') {
      await Promise.all([...pools.values()].map((p) => p.close()));
      process.exit(0);
    }
    const key = `${msg.origin}|${msg.concurrency}`;
    let pool = pools.get(key);
    if (!pool) {
      pool = new Pool(msg.origin, { connections: msg.concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
      pools.set(key, pool);
    }
    const p = pool;
    const latencies: number[] = [];
    let count = 0;
    let total = 0;
    let errors = 0;
    let firstError: string | undefined;
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    const windowStart = start + msg.warmMs;
    const windowEnd = windowStart + msg.durationMs;
    const loop = async () => {
      while (performance.now() < windowEnd) {
        const t0 = performance.now();
        try {
          const res = await p.request({ path: msg.path, method: 'GET', headers: msg.headers });
          await res.body.arrayBuffer();
          if (res.statusCode !== 200) {
            errors++;
            firstError ??= `status ${res.statusCode}`;
            continue;
          }
        } catch (err) {
          errors++;
          firstError ??= String((err as Error).message);
          continue;
        }
        const t1 = performance.now();
        total++;
        if (t1 >= windowStart && t1 < windowEnd) {
          count++;
          latencies.push(t1 - t0);
        }
      }
    };
    await Promise.all(Array.from({ length: msg.concurrency }, loop));
    const cpu = process.cpuUsage(cpu0);
    const result: RunResult = {
      type: 'result',
      id: msg.id,
      count,
      total,
      errors,
      firstError,
      windowMs: msg.durationMs,
      latencies: Float64Array.from(latencies),
      clientCpuMs: (cpu.user + cpu.system) / 1000,
    };
    process.send!(result);
  });
  process.send!({ type: 'ready' });
}

// ---------------------------------------------------------------------------------------------
// The servers and the measurement (parent process)
// ---------------------------------------------------------------------------------------------

type TargetId = 'a' | 'b' | 'f' | 'c';
interface Target {
  id: TargetId;
  label: string;
  origin: string;
  path: string;
  headers: Record<string, string>;
}

interface Sample {
  rps: number;
  latencies: Float64Array;
  serverCpuMs: number;
  clientCpuMs: number;
  count: number;
}

interface CpuStat {
  total: number;
  idle: number;
  steal: number;
}

/** The machine's CPU counters (Linux /proc/stat), or undefined elsewhere. */
async function cpuStat(): Promise<CpuStat | undefined> {
  try {
    const { readFile } = await import('node:fs/promises');
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    return { total: user + nice + system + idle + iowait + irq + softirq + steal, idle: idle + iowait, steal };
  } catch {
    return undefined;
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      concurrency: { type: 'string', default: '1,32' },
      rounds: { type: 'string', default: '5' },
      'round-seconds': { type: 'string', default: '2' },
      'warm-seconds': { type: 'string', default: '1' },
      targets: { type: 'string', default: 'a,b,c' },
      json: { type: 'boolean', default: false },
      'diagnose-no-audit-write': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const usage =
    'usage: node --import tsx bench/proxy.ts [--concurrency 1,32] [--rounds 5] [--round-seconds 2] [--warm-seconds 1] [--targets a,b,c] [--json] [--diagnose-no-audit-write]';
  if (args.help) {
    console.log(usage);
    return;
  }
  const concurrencies = args.concurrency.split(',').map(Number);
  const rounds = Number(args.rounds);
  const roundMs = Number(args['round-seconds']) * 1000;
  const warmMs = Number(args['warm-seconds']) * 1000;
  const only = new Set(args.targets.split(',').map((s) => s.trim()));
  if (concurrencies.some((c) => !Number.isInteger(c) || c < 1) || !Number.isInteger(rounds) || rounds < 1 || !(roundMs > 0) || !(warmMs >= 0)) {
    throw new Error(usage);
  }

  // Heavy imports only here: the load generator child does not need them.
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { randomBytes } = await import('node:crypto');
  const http = await import('node:http');
  const { stringify } = await import('yaml');
  const { startSandbox } = await import('../src/sandbox/index.ts');
  const { loadConfig } = await import('../src/config/index.ts');
  const { createWarrant } = await import('../src/warrant.ts');
  const { createLogger } = await import('../src/http/logger.ts');

  const setupStarted = performance.now();
  // A long access-token lifetime: the token used by (a) and (b) stays valid for the whole run,
  // and Warrant's token cache never needs a refresh.
  const sandbox = await startSandbox({ accessTokenTtl: 3600 });
  const dir = mkdtempSync(join(tmpdir(), 'warrant-bench-proxy-'));
  const providersFile = join(dir, 'sandbox.yaml');
  writeFileSync(providersFile, stringify(sandbox.providerDefinition('sandbox')));
  const adminToken = `bench-admin-${randomBytes(16).toString('hex')}`;
  const LOG_LEVEL = 'error';
  // No DATABASE_URL: the default embedded SQLite store in the temp dir (audit entries included).
  const env: Record<string, string> = {
    WARRANT_DATA_DIR: dir,
    WARRANT_ADMIN_TOKEN: adminToken,
    WARRANT_MASTER_KEY: `k1:${randomBytes(32).toString('base64')}`,
    WARRANT_HOST: '127.0.0.1',
    WARRANT_PORT: '0',
    WARRANT_PROVIDERS: providersFile,
    WARRANT_LOG_LEVEL: LOG_LEVEL,
    // One agent on one connection is a load test, far past the default rates (100 and 200 calls/s):
    // raised out of the way, not turned off, so the limiter still runs on every call.
    WARRANT_AGENT_RATE_PER_SECOND: '1000000',
    WARRANT_CONNECTION_RATE_PER_SECOND: '1000000',
  };
  const config = loadConfig(env);
  const warrant = await createWarrant(config, { logger: createLogger(LOG_LEVEL), notice: () => {}, scheduler: false });
  const warrantUrl = new URL(await warrant.listen());
  if (warrant.store.dialect !== 'sqlite') throw new Error(`expected the embedded SQLite store, got ${warrant.store.dialect}`);
  // Diagnosis only, never Warrant's behaviour: the audit queue still reserves and commits, but the
  // batches it hands over are dropped instead of written, to show what the SQLite write costs.
  const auditWriteOff = args['diagnose-no-audit-write'];
  const realAppend = warrant.audit.append;
  const dropProxyCalls: typeof realAppend = async (inputs, trx) => {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    return list.every((e) => e.type === 'proxy.call') ? [] : realAppend(inputs, trx);
  };

  // A connection through the real authorization code + PKCE flow, and an agent with items:read on it.
  const session = await warrant.connect.createSession({ provider: 'sandbox', owner: 'bench@example.com', scopes: ['items:read'] });
  const opened = await warrant.connect.openLink(session.authorize_url);
  const redirect = await sandbox.authorize(Object.fromEntries(new URL(opened.location).searchParams) as never);
  const outcome = await warrant.connect.handleCallback(new URL(redirect).searchParams, opened.cookieHeader);
  if (!outcome.connection) throw new Error(`connect failed: ${outcome.session.error}`);
  const conn = outcome.connection.id;
  const created = await warrant.app.inject({
    method: 'POST',
    url: '/v1/agents',
    headers: { authorization: `Bearer ${adminToken}` },
    payload: { name: 'bench', owner: 'bench@example.com', grants: [{ connection: conn, scopes: ['items:read'] }] },
  });
  if (created.statusCode !== 201) throw new Error(`agent creation failed: ${created.statusCode} ${created.body}`);
  const agentKey = created.json().api_key as string;
  const accessToken = (await warrant.tokens.getFreshToken(conn)).accessToken;

  // (b): the bare pass-through. node:http, not Fastify: the least a proxy can do in Node.
  const api = new URL(sandbox.apiBaseUrl);
  const passPool = new Pool(api.origin, { connections: 128, pipelining: 1, keepAliveTimeout: 30_000 });
  const upstreamAuth = `Bearer ${accessToken}`;
  const passthrough = http.createServer((req, res) => {
    const headers: Record<string, string | string[] | undefined> = { ...req.headers, authorization: upstreamAuth };
    delete headers.host;
    delete headers.connection;
    passPool
      .request({ path: api.pathname + (req.url ?? '/'), method: req.method as 'GET', headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req })
      .then((up) => {
        const out: Record<string, string | string[] | undefined> = { ...up.headers };
        delete out.connection;
        delete out['keep-alive'];
        delete out['transfer-encoding'];
        res.writeHead(up.statusCode, out as OutgoingHttpHeaders);
        // .pipe(), not stream.pipeline(): with pipeline() this server used ~80 µs more CPU per
        // request on the bench machine (and lost to the same pass-through on Fastify), which
        // would flatter (c). An upstream error mid-body cuts the client's response.
        up.body.on('error', () => res.destroy());
        up.body.pipe(res);
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
  });
  passthrough.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => passthrough.listen(0, '127.0.0.1', resolve));
  const passPort = (passthrough.address() as { port: number }).port;

  // (f), only with --targets …f…: the same pass-through on Fastify (no logger, no hooks), to tell
  // the framework's share of (c) − (b) from Warrant's own work.
  const { default: Fastify } = await import('fastify');
  const fastifyPass = Fastify({ logger: false });
  fastifyPass.removeAllContentTypeParsers();
  fastifyPass.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
  fastifyPass.get('/*', async (request, reply) => {
    const headers: Record<string, string | string[] | undefined> = { ...request.headers, authorization: upstreamAuth };
    delete headers.host;
    delete headers.connection;
    const up = await passPool.request({ path: api.pathname + request.raw.url, method: 'GET', headers });
    const out: Record<string, string | string[] | undefined> = { ...up.headers };
    delete out.connection;
    delete out['keep-alive'];
    delete out['transfer-encoding'];
    reply.code(up.statusCode).headers(out);
    return reply.send(up.body);
  });
  const fastifyUrl = new URL(await fastifyPass.listen({ port: 0, host: '127.0.0.1' }));

  const allTargets: Target[] = [
    { id: 'a', label: 'sandbox API, direct', origin: api.origin, path: `${api.pathname}/items`, headers: { authorization: upstreamAuth } },
    { id: 'b', label: 'bare undici pass-through (node:http)', origin: `http://127.0.0.1:${passPort}`, path: '/items', headers: {} },
    { id: 'f', label: 'bare undici pass-through (Fastify)', origin: fastifyUrl.origin, path: '/items', headers: {} },
    { id: 'c', label: "Warrant's proxy (policy + audit, SQLite)", origin: warrantUrl.origin, path: `/v1/proxy/${conn}/items`, headers: { authorization: `Bearer ${agentKey}` } },
  ];
  // In the order given (default a,b,c).
  const targets = [...only].map((id) => allTargets.find((t) => t.id === id) ?? (() => { throw new Error(`unknown target ${id}\n${usage}`); })());

  // The same answer from every target, before anything is timed.
  const bodies = await Promise.all(
    allTargets.map(async (t) => {
      const res = await fetch(`${t.origin}${t.path}`, { headers: t.headers });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`(${t.id}) answered ${res.status}: ${text}`);
      return text;
    }),
  );
  if (new Set(bodies).size !== 1) throw new Error(`the targets do not serve the same body:\n${bodies.join('\n')}`);
  const bodyBytes = Buffer.byteLength(bodies[0]!);
  const countAudit = async () => {
    await warrant.auditQueue.flush();
    const r = await warrant.store.db
      .selectFrom('audit_events')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('type', '=', 'proxy.call')
      .executeTakeFirstOrThrow();
    return Number(r.n);
  };
  const auditBefore = await countAudit();

  if (auditWriteOff) warrant.audit.append = dropProxyCalls;

  // The load generator: this same file in a child process.
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--load-worker'], { serialization: 'advanced', stdio: 'inherit' });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`the load generator exited (${code})`)));
  });
  let nextId = 0;
  const sentTo = { a: 0, b: 0, f: 0, c: 0 };
  const run = (t: Target, concurrency: number, warm: number, duration: number): Promise<{ result: RunResult; serverCpuMs: number }> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const cpu0 = process.cpuUsage();
      const onMessage = (m: RunResult) => {
        if (m.type !== 'result' || m.id !== id) return;
        child.off('message', onMessage);
        sentTo[t.id] += m.total;
        const cpu = process.cpuUsage(cpu0);
        if (m.errors) reject(new Error(`(${t.id}) c=${concurrency}: ${m.errors} failed requests, first: ${m.firstError}`));
        else resolve({ result: m, serverCpuMs: (cpu.user + cpu.system) / 1000 });
      };
      child.on('message', onMessage);
      const req: RunRequest = { type: 'run', id, origin: t.origin, path: t.path, headers: t.headers, concurrency, warmMs: warm, durationMs: duration };
      child.send(req);
    });

  const setupMs = performance.now() - setupStarted;
  const log = (s: string) => process.stderr.write(`${s}\n`);
  log(
    `bench/proxy: node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}); setup ${fmt(setupMs / 1000, 1)} s; ` +
      `concurrency ${concurrencies.join(', ')}; ${rounds} rounds x ${roundMs / 1000} s per target (after ${warmMs / 1000} s warm-up), ` +
      `each run also discards its first 250 ms`,
  );

  // Per concurrency: a warm-up of every target, then `rounds` rounds. Order a b c, then c b a, and
  // so on: every target gets the early and the late slot of a round equally often.
  const ROUND_WARM_MS = 250;
  const samples = new Map<string, Sample[]>();
  const stat0 = await cpuStat();
  const own0 = process.cpuUsage();
  let childCpuMs = 0;
  const started = performance.now();
  for (const concurrency of concurrencies) {
    for (const t of targets) if (warmMs > 0) childCpuMs += (await run(t, concurrency, warmMs, 1)).result.clientCpuMs;
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? targets : [...targets].reverse();
      for (const t of order) {
        const { result, serverCpuMs } = await run(t, concurrency, ROUND_WARM_MS, roundMs);
        const key = `${t.id}|${concurrency}`;
        const list = samples.get(key) ?? [];
        list.push({ rps: result.count / (result.windowMs / 1000), latencies: result.latencies, serverCpuMs, clientCpuMs: result.clientCpuMs, count: result.count });
        childCpuMs += result.clientCpuMs;
        samples.set(key, list);
        log(`  c=${concurrency} round ${r + 1}/${rounds} (${t.id}): ${fmtInt(result.count / (result.windowMs / 1000))} rps`);
      }
    }
  }
  const measuredS = (performance.now() - started) / 1000;
  const stat1 = await cpuStat();
  const ownCpu = process.cpuUsage(own0);

  // Aggregate: rps = all requests / all windows; percentiles over every recorded latency.
  interface Row {
    target: Target;
    concurrency: number;
    rps: number;
    rpsMin: number;
    rpsMax: number;
    p50: number;
    p90: number;
    p99: number;
    max: number;
    serverCpuUsPerReq: number;
    /** Share of one core used, over the runs (warm-up part included). */
    serverCpu: number;
    clientCpu: number;
    requests: number;
  }
  const rows: Row[] = [];
  for (const concurrency of concurrencies) {
    for (const t of targets) {
      const list = samples.get(`${t.id}|${concurrency}`)!;
      const total = list.reduce((s, x) => s + x.count, 0);
      const all = new Float64Array(total);
      let o = 0;
      for (const x of list) {
        all.set(x.latencies, o);
        o += x.latencies.length;
      }
      all.sort();
      const rps = total / ((list.length * roundMs) / 1000);
      // Server CPU over the whole run (warm-up part included) divided by the requests of the whole
      // run is not available; the window share is close: CPU of the run × window / (window + warm).
      const cpuMs = list.reduce((s, x) => s + x.serverCpuMs * (roundMs / (roundMs + ROUND_WARM_MS)), 0);
      rows.push({
        target: t,
        concurrency,
        rps,
        rpsMin: Math.min(...list.map((x) => x.rps)),
        rpsMax: Math.max(...list.map((x) => x.rps)),
        p50: percentile(all, 50),
        p90: percentile(all, 90),
        p99: percentile(all, 99),
        max: all[all.length - 1] ?? NaN,
        serverCpuUsPerReq: (cpuMs * 1000) / total,
        serverCpu: list.reduce((s, x) => s + x.serverCpuMs, 0) / (list.length * (roundMs + ROUND_WARM_MS)),
        clientCpu: list.reduce((s, x) => s + x.clientCpuMs, 0) / (list.length * (roundMs + ROUND_WARM_MS)),
        requests: total,
      });
    }
  }
  const row = (id: TargetId, c: number) => rows.find((r) => r.target.id === id && r.concurrency === c);

  const out: string[] = [];
  out.push('');
  out.push(
    `Proxy bench: node ${process.version}, ${cpus().length} cores, log level ${LOG_LEVEL}, store: embedded SQLite, ` +
      (auditWriteOff ? 'AUDIT WRITES OF PROXIED CALLS DROPPED (--diagnose-no-audit-write: not how Warrant runs)' : 'audit on'),
  );
  out.push(`load generator: undici Pool in a child process (closed loop, one request in flight per connection); GET answers ${bodyBytes} bytes of JSON`);
  out.push(`${rounds} interleaved rounds x ${roundMs / 1000} s per target and concurrency; measured part ${fmt(measuredS, 1)} s`);
  if (stat0 && stat1) {
    // Whole-machine view over the measured part (timed rounds only for the load generator).
    const d = (k: keyof CpuStat) => stat1[k] - stat0[k];
    const all = d('total');
    const ours = ((ownCpu.user + ownCpu.system) / 1000 + childCpuMs) / 1000; // s
    out.push(
      `machine during the measured part: ${fmtInt((100 * (all - d('idle'))) / all)}% of ${cpus().length} cores busy (/proc/stat), ` +
        `${fmt((100 * d('steal')) / all, 1)}% stolen by the hypervisor; the two bench processes used ${fmt(ours / measuredS, 2)} cores`,
    );
  }
  out.push('');
  out.push('| target | conc. | rps | rps per round (min–max) | p50 ms | p90 ms | p99 ms | max ms | server CPU µs/req | server CPU | client CPU |');
  out.push('|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    out.push(
      `| (${r.target.id}) ${r.target.label} | ${r.concurrency} | ${fmtInt(r.rps)} | ${fmtInt(r.rpsMin)}–${fmtInt(r.rpsMax)} | ${fmt(r.p50, 3)} | ${fmt(r.p90, 3)} | ${fmt(r.p99, 3)} | ${fmt(r.max, 1)} | ${fmtInt(r.serverCpuUsPerReq)} | ${fmtInt(r.serverCpu * 100)}% | ${fmtInt(r.clientCpu * 100)}% |`,
    );
  }
  out.push('');
  out.push('| conc. | c/b rps | c/a rps | b/a rps | p50 c−b ms | p99 c−b ms | server CPU c−a µs/req | server CPU b−a µs/req |');
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const c of concurrencies) {
    const a = row('a', c);
    const b = row('b', c);
    const w = row('c', c);
    const ratio = (x?: Row, y?: Row) => (x && y ? fmt(x.rps / y.rps) : 'n/a');
    const diff = (x: number | undefined, y: number | undefined, d = 3) => (x !== undefined && y !== undefined ? fmt(x - y, d) : 'n/a');
    out.push(
      `| ${c} | ${ratio(w, b)} | ${ratio(w, a)} | ${ratio(b, a)} | ${diff(w?.p50, b?.p50)} | ${diff(w?.p99, b?.p99)} | ${diff(w?.serverCpuUsPerReq, a?.serverCpuUsPerReq, 0)} | ${diff(b?.serverCpuUsPerReq, a?.serverCpuUsPerReq, 0)} |`,
    );
  }
  if (targets.some((t) => t.id === 'f')) {
    out.push('');
    out.push('| conc. | f/b rps | c/f rps | p99 f−b ms | p99 c−f ms | server CPU f−b µs/req | server CPU c−f µs/req |');
    out.push('|---:|---:|---:|---:|---:|---:|---:|');
    for (const c of concurrencies) {
      const b = row('b', c);
      const f = row('f', c);
      const w = row('c', c);
      const ratio = (x?: Row, y?: Row) => (x && y ? fmt(x.rps / y.rps) : 'n/a');
      const diff = (x: number | undefined, y: number | undefined, d = 3) => (x !== undefined && y !== undefined ? fmt(x - y, d) : 'n/a');
      out.push(
        `| ${c} | ${ratio(f, b)} | ${ratio(w, f)} | ${diff(f?.p99, b?.p99)} | ${diff(w?.p99, f?.p99)} | ${diff(f?.serverCpuUsPerReq, b?.serverCpuUsPerReq, 0)} | ${diff(w?.serverCpuUsPerReq, f?.serverCpuUsPerReq, 0)} |`,
      );
    }
  }
  const lo = Math.min(...concurrencies);
  const hi = Math.max(...concurrencies);
  const cb = row('c', hi) && row('b', hi) ? row('c', hi)!.rps / row('b', hi)!.rps : NaN;
  const added = row('c', lo) && row('b', lo) ? row('c', lo)!.p99 - row('b', lo)!.p99 : NaN;
  out.push('');
  out.push(`targets: c/b throughput at concurrency ${hi} >= 0.8: ${fmt(cb)} ${Number.isFinite(cb) ? (cb >= 0.8 ? 'MET' : 'MISSED') : ''}`);
  out.push(`         p99 added by c over b at concurrency ${lo} < 2 ms: ${fmt(added, 3)} ms ${Number.isFinite(added) ? (added < 2 ? 'MET' : 'MISSED') : ''}`);
  const audited = (await countAudit()) - auditBefore;
  out.push(`audit: ${fmtInt(audited)} proxy.call entries written to SQLite for ${fmtInt(sentTo.c)} requests to (c)`);
  out.push(`requests completed, warm-ups included: ${targets.map((t) => `(${t.id}) ${fmtInt(sentTo[t.id])}`).join(', ')}`);
  console.log(out.join('\n'));
  if (!auditWriteOff && audited < sentTo.c) throw new Error('some proxied calls were not audited');
  if (args.json) console.log(JSON.stringify({ node: process.version, cores: cpus().length, rows: rows.map(({ target, ...r }) => ({ target: target.id, ...r })) }));

  // Teardown.
  child.send({ type: 'exit' });
  await new Promise((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve) => passthrough.close(() => resolve()));
  passthrough.closeAllConnections();
  await fastifyPass.close();
  await passPool.close();
  await warrant.close();
  await sandbox.close();
  rmSync(dir, { recursive: true, force: true });
}

if (process.argv.includes('--load-worker')) {
  await loadWorker();
} else {
  await main();
}
