// The bench's processes and how the parent talks to them: each role (upstream, pass-through,
// Warrant, load generator) is a child forked with tsx; the parent sends { id, type, … } and the
// child answers { id, ok, value } or { id, ok: false, error }. Every call has a deadline.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

/** What every role answers to `{ type: 'cpu' }`: its CPU so far and the monotonic clock. */
export interface CpuMark {
  /** user + system CPU of the process since it started, ms. */
  cpuMs: number;
  /** process.hrtime in µs (CLOCK_MONOTONIC: the same clock as a V8 CPU profile's timestamps). */
  hrUs: number;
}

export function cpuMark(): CpuMark {
  const c = process.cpuUsage();
  return { cpuMs: (c.user + c.system) / 1000, hrUs: Number(process.hrtime.bigint() / 1000n) };
}

export interface Role {
  name: string;
  child: ChildProcess;
  /** What the child sent once ready (its origin, keys …). */
  info: Record<string, unknown>;
  call<T>(type: string, body?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  cpu(): Promise<CpuMark>;
  /** Asks the child to exit (it closes its servers first); kills it past the deadline. */
  stop(timeoutMs?: number): Promise<void>;
}

const roleFile = (name: string) => fileURLToPath(new URL(`./${name}.ts`, import.meta.url));

/** Forks bench/proxy/<name>.ts and waits (at most `readyMs`) for its `ready` message. */
export async function startRole(
  name: string,
  opts: { env?: Record<string, string>; execArgv?: string[]; readyMs?: number } = {},
): Promise<Role> {
  const child = fork(roleFile(name), [], {
    execArgv: ['--import', 'tsx', ...(opts.execArgv ?? [])],
    env: { ...process.env, ...opts.env },
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  let nextId = 1;
  let exited = false;
  const info = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: not ready within ${opts.readyMs ?? 60_000} ms`)), opts.readyMs ?? 60_000);
    child.once('message', (m: { type?: string; error?: string } & Record<string, unknown>) => {
      clearTimeout(timer);
      if (m.type === 'ready') resolve(m);
      else reject(new Error(`${name} failed to start: ${m.error ?? JSON.stringify(m)}`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before it was ready (code ${code})`));
    });
  });
  child.on('message', (m: Reply) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.ok) p.resolve(m.value);
    else p.reject(new Error(`${name}: ${m.error}`));
  });
  child.on('exit', (code) => {
    exited = true;
    for (const p of pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(`${name} exited (code ${code})`));
    }
    pending.clear();
  });
  const call = <T>(type: string, body: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (exited) return reject(new Error(`${name} has exited`));
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`${name}: no answer to ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      child.send({ ...body, id, type });
    });
  return {
    name,
    child,
    info,
    call,
    cpu: () => call<CpuMark>('cpu'),
    async stop(timeoutMs = 15_000) {
      if (exited) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      await call('exit', {}, timeoutMs).catch(() => {});
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await gone;
      clearTimeout(timer);
    },
  };
}

export type Handlers = Record<string, (msg: Record<string, unknown>) => unknown>;

/**
 * The child's side: answers `cpu` and `exit` (after `close`) itself and dispatches the rest to
 * `handlers`, then tells the parent it is ready with `info`.
 */
export function serveRole(info: Record<string, unknown>, handlers: Handlers, close: () => Promise<void> = async () => {}): void {
  process.on('message', async (msg: { id: number; type: string } & Record<string, unknown>) => {
    const reply = (r: Omit<Reply, 'id'>) => process.send!({ id: msg.id, ...r });
    if (msg.type === 'cpu') return reply({ ok: true, value: cpuMark() });
    if (msg.type === 'exit') {
      try {
        await close();
      } finally {
        reply({ ok: true });
        // Let the IPC message leave; --cpu-prof writes its profile on this exit.
        setImmediate(() => process.exit(0));
      }
      return;
    }
    const h = handlers[msg.type];
    if (!h) return reply({ ok: false, error: `unknown message ${msg.type}` });
    try {
      reply({ ok: true, value: await h(msg) });
    } catch (err) {
      reply({ ok: false, error: (err as Error).stack ?? String(err) });
    }
  });
  process.send!({ type: 'ready', ...info });
}

/** A child that failed while starting: tell the parent why, then exit. */
export function failRole(err: unknown): void {
  const error = (err as Error).stack ?? String(err);
  if (process.send) process.send({ type: 'failed', error }, () => process.exit(1));
  else {
    console.error(error);
    process.exit(1);
  }
}

/** The parent died or closed the channel: nothing left to serve. */
process.on('disconnect', () => process.exit(0));
