import { Command, Option } from 'commander';
import { request } from 'undici';

// The admin commands that act on a running Warrant (offboarding, reviews, audit export) go through
// its admin API rather than the store: the server is the one that revokes at IdPs, invalidates
// caches on every instance and writes the audit. One client for all of them, here.

export interface AdminApiOptions {
  url: string;
  token?: string;
  timeoutMs: number;
}

/** Adds --url and --token (defaults from WARRANT_URL / WARRANT_PUBLIC_URL and WARRANT_ADMIN_TOKEN). */
export function withAdminApi(cmd: Command): Command {
  return cmd
    .addOption(new Option('--url <url>', 'the Warrant to talk to').env('WARRANT_URL').default(process.env.WARRANT_PUBLIC_URL ?? 'http://127.0.0.1:7070'))
    .addOption(new Option('--token <token>', 'an admin token or admin key (prefer the environment variable)').env('WARRANT_ADMIN_TOKEN'))
    .addOption(new Option('--timeout <seconds>', 'give up after this long').default('30').argParser((v) => Number.parseFloat(v)));
}

export function adminApiOf(opts: { url: string; token?: string; timeout?: number | string }): AdminApiOptions {
  const seconds = typeof opts.timeout === 'number' ? opts.timeout : Number.parseFloat(opts.timeout ?? '30');
  return { url: opts.url.replace(/\/+$/, ''), token: opts.token, timeoutMs: Math.max(1, Number.isFinite(seconds) ? seconds : 30) * 1000 };
}

/** A problem answered by the server, or a failure to reach it; its message is fit for stderr. */
export class AdminApiError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly problem?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** Calls the admin API and answers the parsed JSON body (undefined for 204); throws AdminApiError otherwise. */
export async function callAdminApi<T = unknown>(api: AdminApiOptions, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
  if (!api.token) throw new AdminApiError('no admin credential: set WARRANT_ADMIN_TOKEN (or pass --token)');
  let res;
  try {
    res = await request(`${api.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${api.token}`, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: api.timeoutMs,
      bodyTimeout: api.timeoutMs,
      signal: AbortSignal.timeout(api.timeoutMs),
    });
  } catch (err) {
    const e = err as { code?: string; name?: string };
    throw new AdminApiError(`could not reach Warrant at ${api.url} (${e.code ?? e.name ?? 'error'})`);
  }
  const text = await res.body.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (res.statusCode >= 400) {
    const p = (parsed ?? {}) as Record<string, unknown>;
    const what = typeof p.detail === 'string' ? p.detail : typeof p.title === 'string' ? p.title : `HTTP ${res.statusCode}`;
    throw new AdminApiError(`${typeof p.code === 'string' ? `${p.code}: ` : ''}${what}`, res.statusCode, p);
  }
  return parsed as T;
}

/** Runs an admin command's body: an AdminApiError becomes one line on stderr and exit code 1. */
export async function runAdminCommand(body: () => Promise<void>, io: { stderr(text: string): void } = { stderr: (t) => void process.stderr.write(t) }): Promise<void> {
  try {
    await body();
  } catch (err) {
    if (!(err instanceof AdminApiError)) throw err;
    io.stderr(`warrant: ${err.message}\n`);
    process.exitCode = 1;
  }
}
