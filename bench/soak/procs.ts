// The processes of a soak run: the sandbox IdP, a private Redis, and the Warrant instances, each a
// real child process on loopback whose output goes to a log file in the run's directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const warrantBin = fileURLToPath(new URL('../../bin/warrant.js', import.meta.url));
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The first 64 KiB it wrote on stdout (the sandbox's header); all of it goes to its log file. */
  stdout(): string;
}

export function startProc(name: string, cmd: string, args: string[], env: Record<string, string | undefined>, logDir: string): Proc {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    if (out.length < 64 * 1024) out += d;
    log.write(d);
  });
  child.stderr!.on('data', (d: Buffer) => log.write(d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      log.end(`\n[soak] ${name} exited code=${code} signal=${signal}\n`);
      resolve({ code, signal });
    });
  });
  if (child.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  return { name, child, pid: child.pid, exited, stdout: () => out };
}

/** A port nobody listens on right now (the soak restarts processes on the same port). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Thrown from a `waitUntil` probe to stop waiting at once (other errors mean "not yet"). */
export class GiveUp extends Error {}

export async function waitUntil(what: string, fn: () => Promise<boolean>, timeoutMs: number, everyMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fn().catch((err: unknown) => {
      if (err instanceof GiveUp) throw err;
      return false;
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready within ${timeoutMs / 1000} s`);
    await sleep(everyMs);
  }
}

/** Resident set size in KiB, from /proc (Linux); undefined when the process is gone. */
export function rssKiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; reports how it ended and how long it took. */
export async function stopProc(p: Proc, graceMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number; killed: boolean }> {
  const started = Date.now();
  if (p.child.exitCode !== null || p.child.signalCode !== null) return { ...(await p.exited), ms: 0, killed: false };
  p.child.kill('SIGTERM');
  const timer = sleep(graceMs).then(() => 'timeout' as const);
  const first = await Promise.race([p.exited, timer]);
  if (first !== 'timeout') return { ...first, ms: Date.now() - started, killed: false };
  p.child.kill('SIGKILL');
  return { ...(await p.exited), ms: Date.now() - started, killed: true };
}

// ---------------------------------------------------------------------------------------------

export interface SandboxProc {
  proc: Proc;
  origin: string;
  controlUrl: string;
  control<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
}

export async function startSandboxProc(tokenTtl: number, logDir: string): Promise<SandboxProc> {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME };
  const proc = startProc('sandbox', process.execPath, [warrantBin, 'sandbox', '--port', '0', '--token-ttl', String(tokenTtl)], env, logDir);
  let header: RegExpExecArray | null = null;
  await waitUntil('sandbox', async () => !!(header = /control (http:\/\/\S+)/.exec(proc.stdout())), 60_000, 100);
  const controlUrl = header![1]!;
  const origin = new URL(controlUrl).origin;
  return {
    proc,
    origin,
    controlUrl,
    async control<T>(method: string, path: string, body?: unknown): Promise<T> {
      const res = await fetch(`${controlUrl}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`sandbox ${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
      return (text ? JSON.parse(text) : undefined) as T;
    },
  };
}

// ---------------------------------------------------------------------------------------------

function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    const done = (ok: boolean) => (sock.destroy(), resolve(ok));
    sock.setTimeout(1_000, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

export interface RedisProc {
  port: number;
  url: string;
  proc?: Proc;
  start(): Promise<void>;
  /** SIGKILL: a crash, not a clean shutdown. */
  kill(): Promise<void>;
}

export async function redisProc(logDir: string): Promise<RedisProc> {
  const port = await freePort();
  const r: RedisProc = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      r.proc = startProc('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { PATH: process.env.PATH }, logDir);
      await waitUntil('redis', () => redisPing(port), 20_000, 100);
    },
    async kill() {
      if (!r.proc) return;
      r.proc.child.kill('SIGKILL');
      await r.proc.exited;
      r.proc = undefined;
    },
  };
  return r;
}

// ---------------------------------------------------------------------------------------------

export interface InstanceSettings {
  index: number;
  port: number;
  databaseUrl: string;
  masterKey: string;
  adminToken: string;
  providersFile: string;
  dataDir: string;
  redisUrl?: string;
}

export interface Instance {
  settings: InstanceSettings;
  origin: string;
  proc?: Proc;
  /** Set while the soak itself stops or kills it: any other exit is a crash. */
  stopping: boolean;
  crashes: { at: number; code: number | null; signal: string | null }[];
  /** Called on a crash (the pass restarts it). */
  onCrash?: () => void;
  /** Start-ups that failed (the process exited before /readyz); each was retried once. */
  startFailures: { at: number; reason: string }[];
  /** Starts (or restarts) the process and waits for /readyz; one retry if it exits first. */
  start(): Promise<void>;
}

/** WARRANT_* settings of the soak's own environment are passed on (pool size, scheduler interval, …). */
function passedThrough(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter(([k, v]) => k.startsWith('WARRANT_') && !k.startsWith('WARRANT_TEST_') && v !== undefined)) as Record<string, string>;
}

export function warrantInstance(s: InstanceSettings, logDir: string): Instance {
  const origin = `http://127.0.0.1:${s.port}`;
  const inst: Instance = {
    settings: s,
    origin,
    stopping: false,
    crashes: [],
    startFailures: [],
    async start() {
      try {
        await startOnce();
      } catch (err) {
        if (!(err instanceof GiveUp)) throw err;
        const reason = lastLine(join(logDir, `warrant-${s.index}.log`));
        inst.startFailures.push({ at: Date.now(), reason });
        process.stderr.write(`[soak] warrant instance ${s.index} exited during start-up (${reason}); retrying once\n`);
        await startOnce();
      }
    },
  };

  async function startOnce(): Promise<void> {
    const env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      WARRANT_LOG_LEVEL: 'warn',
      WARRANT_LOG_FORMAT: 'json',
      ...passedThrough(),
      WARRANT_HOST: '127.0.0.1',
      WARRANT_PORT: String(s.port),
      WARRANT_DATA_DIR: s.dataDir,
      DATABASE_URL: s.databaseUrl,
      WARRANT_MASTER_KEY: s.masterKey,
      WARRANT_ADMIN_TOKEN: s.adminToken,
      WARRANT_PROVIDERS: s.providersFile,
      WARRANT_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.0/8', // the soak's webhook receiver
      ...(s.redisUrl ? { REDIS_URL: s.redisUrl } : {}),
    };
    const proc = startProc(`warrant-${s.index}`, process.execPath, [warrantBin, 'serve'], env, logDir);
    inst.proc = proc;
    let gone = false;
    let ready = false;
    void proc.exited.then(({ code, signal }) => {
      gone = true;
      // A death during start-up is start()'s to report.
      if (!ready || inst.stopping || inst.proc !== proc) return;
      inst.crashes.push({ at: Date.now(), code, signal });
      inst.onCrash?.();
    });
    await waitUntil(
      `warrant instance ${s.index}`,
      async () => {
        if (gone) throw new GiveUp(`warrant instance ${s.index} exited during start-up (see ${logDir}/warrant-${s.index}.log)`);
        const res = await fetch(`${origin}/readyz`, { signal: AbortSignal.timeout(2_000) });
        await res.body?.cancel();
        return res.ok;
      },
      90_000,
    );
    ready = true;
  }
  return inst;
}

/** The last line a process wrote before the soak's own exit note, for a one-line reason. */
function lastLine(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('[soak]'));
    return (lines[lines.length - 1] ?? '').slice(0, 300);
  } catch {
    return '?';
  }
}
