import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { loadConfig } from '../config/index.ts';
import { createLogger } from '../http/logger.ts';
import { startSandbox, type Sandbox } from '../sandbox/index.ts';
import { createWarrant, type Warrant } from '../warrant.ts';
import { startAlertInbox, type AlertInbox } from './alerts.ts';

// Everything the demo runs, in this one process: the sandbox IdP, Warrant on a throwaway SQLite
// store, and a webhook receiver for its alerts; all on loopback ports picked at random, all
// stopped and the temporary directory removed by close().

export interface RigOptions {
  tokenTtlSeconds: number;
  /** Warrant's and the sandbox's own log lines on stderr (default: silent). */
  verbose?: boolean;
}

export interface Rig {
  sandbox: Sandbox;
  /** `http://127.0.0.1:PORT`: the IdP at /oauth, the API at /api, the controls at /_sandbox. */
  sandboxOrigin: string;
  warrant: Warrant;
  warrantUrl: string;
  alerts: AlertInbox;
  /** The temporary directory holding the store; gone after close(). */
  dir: string;
  /** Every port the demo listens on. */
  ports: { sandbox: number; warrant: number; alerts: number };
  /** Calls Warrant's admin API; throws with the problem's code on a non-2xx answer. */
  admin<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T>;
  /** Sandbox log lines seen so far (never a token: the sandbox does not log them). */
  sandboxLog: string[];
  close(): Promise<void>;
}

/** A port free on 127.0.0.1 right now. Warrant must know its port before listening: its
 *  callback URL, which the IdP redirects the browser to, carries it. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export class AdminCallError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

export async function startRig(opts: RigOptions): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-demo-'));
  const sandboxLog: string[] = [];
  const stack: (() => Promise<unknown>)[] = [async () => rmSync(dir, { recursive: true, force: true })];
  const unwind = async () => {
    for (const step of stack.splice(0).reverse()) await step().catch(() => undefined);
  };
  try {
    const sandbox = await startSandbox({
      accessTokenTtl: opts.tokenTtlSeconds,
      logger: (line) => {
        sandboxLog.push(line);
        if (opts.verbose) process.stderr.write(`${line}\n`);
      },
    });
    stack.push(() => sandbox.close());
    const sandboxOrigin = new URL(sandbox.issuer).origin;

    const alerts = await startAlertInbox();
    stack.push(() => alerts.close());

    const providersFile = join(dir, 'sandbox.json');
    writeFileSync(providersFile, JSON.stringify(sandbox.providerDefinition('sandbox')));
    // Random, used only inside this run; the dashboard gets a read-only admin key instead.
    const adminToken = randomBytes(24).toString('base64url');
    const logger: Logger = opts.verbose ? createLogger('info', { format: 'pretty', destination: pino.destination(2) }) : pino({ level: 'silent' });

    let warrant: Warrant | undefined;
    let warrantUrl = '';
    // A port picked free may be taken before Warrant binds it: try another.
    for (let attempt = 1; !warrant; attempt++) {
      const port = await freePort();
      const config = loadConfig({
        WARRANT_HOST: '127.0.0.1',
        WARRANT_PORT: String(port),
        WARRANT_DATA_DIR: join(dir, 'data'),
        WARRANT_ADMIN_TOKEN: adminToken,
        WARRANT_MASTER_KEY: `k1:${randomBytes(32).toString('base64')}`,
        WARRANT_PROVIDERS: providersFile,
        // 3-second tokens: look for due refreshes often, and give up on the IdP quickly.
        WARRANT_SCHEDULER_INTERVAL_MS: '500',
        WARRANT_HTTP_TIMEOUT_MS: '5000',
        WARRANT_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.0/8',
        WARRANT_SHUTDOWN_GRACE_SECONDS: '3',
      });
      const candidate = await createWarrant(config, { logger, notice: () => {}, env: {} });
      try {
        warrantUrl = (await candidate.listen()).replace(/\/+$/, '');
        warrant = candidate;
      } catch (err) {
        await candidate.close({ graceMs: 500 }).catch(() => undefined);
        if ((err as { code?: string }).code !== 'EADDRINUSE' || attempt >= 5) throw err;
      }
    }
    const w = warrant;
    stack.push(() => w.close({ graceMs: 2_000 }));

    async function admin<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
      const res = await fetch(`${warrantUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
      const text = await res.text();
      const parsed = text ? (JSON.parse(text) as unknown) : undefined;
      if (!res.ok) {
        const p = parsed as { code?: string; detail?: string } | undefined;
        throw new AdminCallError(`${method} ${path} answered ${res.status} ${p?.code ?? ''}${p?.detail ? `: ${p.detail}` : ''}`, res.status, p?.code);
      }
      return parsed as T;
    }

    return {
      sandbox,
      sandboxOrigin,
      warrant: w,
      warrantUrl,
      alerts,
      dir,
      ports: { sandbox: Number(new URL(sandboxOrigin).port), warrant: Number(new URL(warrantUrl).port), alerts: alerts.port },
      admin,
      sandboxLog,
      close: unwind,
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}
