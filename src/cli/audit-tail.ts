import { Command, Option } from 'commander';
import { AdminApiError, adminApiOf, callAdminApi, runAdminCommand, withAdminApi, type AdminApiOptions } from './admin-api.ts';
import type { AuditEntryView } from '../http/routes/audit.ts';

// `warrant audit tail [-n N] [--follow]`: the newest entries of the audit log (GET /v1/audit,
// newest first), then, with --follow, every entry written after them, asked for once a second
// from the last seq seen, until Ctrl-C. Not following by default, as tail(1): scripts get an end.

export interface TailOptions {
  lines: number;
  follow: boolean;
  intervalMs: number;
  json: boolean;
  filters: { type?: string; subject?: string; actor?: string; since?: string };
}

/** One entry per line: time, seq, type, actor, subject, data. */
export const entryLine = (e: AuditEntryView): string =>
  `${e.at}  #${e.seq}  ${e.type}  ${e.actor}  ${e.subject ?? '-'}${Object.keys(e.data).length ? `  ${JSON.stringify(e.data)}` : ''}`;

/** Prints the newest `lines` entries, then (following) new ones until `signal` aborts. */
export async function tailAudit(api: AdminApiOptions, o: TailOptions, out: (text: string) => void, signal?: AbortSignal): Promise<void> {
  const filters = Object.entries(o.filters).filter((kv): kv is [string, string] => kv[1] !== undefined);
  const print = (entries: AuditEntryView[]) => {
    if (entries.length) out(entries.map((e) => (o.json ? JSON.stringify(e) : entryLine(e))).join('\n') + '\n');
  };
  const q = new URLSearchParams([...filters, ['order', 'desc'], ['limit', String(o.lines)]]);
  const newest = (await callAdminApi<{ entries: AuditEntryView[] }>(api, 'GET', `/v1/audit?${q}`)).entries.reverse();
  print(newest);
  if (!o.follow) return;
  // Nothing matched yet: follow from the head, not from the start of the log.
  let cursor = newest.at(-1)?.seq ?? (await callAdminApi<{ seq: number }>(api, 'GET', '/v1/audit/head')).seq;
  while (!signal?.aborted) {
    const page = await callAdminApi<{ entries: AuditEntryView[] }>(api, 'GET', `/v1/audit?${new URLSearchParams([...filters, ['after', String(cursor)], ['limit', '1000']])}`);
    print(page.entries);
    cursor = page.entries.at(-1)?.seq ?? cursor;
    if (page.entries.length === 1000) continue;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, o.intervalMs);
      function done() {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}

const positive = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new AdminApiError(`${name}: expected a positive number, got ${v}`);
  return n;
};

export function auditTailCommand(io: { stdout(text: string): void; stderr(text: string): void }): Command {
  return withAdminApi(
    new Command('tail').description(
      'Print the newest audit entries, oldest of them first; with --follow, keep printing new ones (asked for every second) until Ctrl-C.',
    ),
  )
    .addOption(new Option('-n, --lines <n>', 'how many of the newest entries to print first (1 to 1000)').default(20).argParser(positive('--lines')))
    .option('-f, --follow', 'keep printing new entries until Ctrl-C')
    .option('--type <type>', 'only entries of this type (e.g. connection.reauth_required)')
    .option('--subject <subject>', 'only entries about this subject (e.g. connection:con_…, agent:agt_…)')
    .option('--actor <actor>', 'only entries by this actor (admin, admin_key:adk_…, agent:agt_…, system)')
    .option('--since <time>', 'only entries at or after this time (RFC 3339, or epoch ms)')
    .addOption(new Option('--interval <seconds>', 'how often --follow asks').default(1).argParser(positive('--interval')).hideHelp())
    .option('--json', 'print each entry as the API answers it, one JSON document per line')
    .action((opts: { url: string; token?: string; timeout?: number; lines: number; follow?: boolean; type?: string; subject?: string; actor?: string; since?: string; interval: number; json?: boolean }) =>
      runAdminCommand(async () => {
        if (!Number.isInteger(opts.lines) || opts.lines > 1000) throw new AdminApiError('--lines: expected an integer from 1 to 1000');
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        if (opts.follow) process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
        try {
          await tailAudit(
            adminApiOf(opts),
            {
              lines: opts.lines,
              follow: !!opts.follow,
              intervalMs: opts.interval * 1000,
              json: !!opts.json,
              filters: { type: opts.type, subject: opts.subject, actor: opts.actor, since: opts.since },
            },
            (t) => io.stdout(t),
            stop.signal,
          );
        } finally {
          process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
        }
      }, io),
    );
}
