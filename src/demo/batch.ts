import { setTimeout as sleep } from 'node:timers/promises';

// The simulated overnight batch: N proxied calls by a few concurrent workers at a steady pace,
// each call behaving as a well-written agent does: it waits and retries when Warrant says the
// failure is transient (`refresh_unavailable` with `retry_after`, its own rate limits), within a
// deadline, and stops at once on anything else (`reauth_required` is for a human to fix).

/** Problem codes worth waiting for: Warrant or the upstream will be able to serve again soon. */
const transient = new Set(['refresh_unavailable', 'rate_limited', 'upstream_rate_limited', 'unavailable', 'upstream_unavailable']);

export interface CallRecord {
  index: number;
  startedAt: number;
  endedAt: number;
  ok: boolean;
  status: number;
  /** The problem `code` of a failed call (`network_error` when Warrant could not be reached). */
  code?: string;
  /** Attempts beyond the first. */
  retries: number;
  /** Transient codes met on the way, even when the call succeeded in the end. */
  waitedOn: string[];
}

export interface BatchEvent {
  /** Runs when the call of this index is about to start (0-based). */
  atCall: number;
  name: string;
  run(): Promise<void>;
}

export interface BatchOptions {
  url: string;
  agentKey: string;
  calls: number;
  workers: number;
  ratePerSecond: number;
  /** A call gives up waiting on transient failures after this long. */
  callDeadlineMs: number;
  events: BatchEvent[];
  onCall(record: CallRecord): void;
  signal?: AbortSignal;
}

export interface BatchOutcome {
  records: CallRecord[];
  /** When each event started and finished running (epoch ms). */
  events: { name: string; at: number; doneAt: number; error?: string }[];
  startedAt: number;
  endedAt: number;
}

interface Problem {
  code?: string;
  retry_after?: number;
}

async function oneCall(opts: BatchOptions, index: number): Promise<CallRecord> {
  const startedAt = Date.now();
  const deadline = startedAt + opts.callDeadlineMs;
  const waitedOn: string[] = [];
  for (let attempt = 0; ; attempt++) {
    let status = 0;
    let code: string | undefined;
    let waitMs = 500;
    try {
      const res = await fetch(opts.url, {
        headers: { authorization: `Bearer ${opts.agentKey}`, accept: 'application/json' },
        signal: AbortSignal.any([AbortSignal.timeout(Math.max(1_000, deadline - Date.now())), ...(opts.signal ? [opts.signal] : [])]),
      });
      status = res.status;
      const text = await res.text();
      if (res.ok) return { index, startedAt, endedAt: Date.now(), ok: true, status, retries: attempt, waitedOn };
      let problem: Problem = {};
      try {
        problem = JSON.parse(text) as Problem;
      } catch {
        /* not a problem document: an upstream answer passed through */
      }
      code = problem.code ?? `http_${status}`;
      const retryAfter = problem.retry_after ?? Number(res.headers.get('retry-after') ?? NaN);
      if (Number.isFinite(retryAfter)) waitMs = Math.min(5_000, Math.max(250, retryAfter * 1000));
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      code = 'network_error';
    }
    const retryable = code === 'network_error' || transient.has(code);
    if (!retryable || Date.now() + waitMs > deadline) {
      return { index, startedAt, endedAt: Date.now(), ok: false, status, code, retries: attempt, waitedOn };
    }
    waitedOn.push(code);
    await sleep(waitMs, undefined, { signal: opts.signal });
  }
}

export async function runBatch(opts: BatchOptions): Promise<BatchOutcome> {
  const records: CallRecord[] = [];
  const events: BatchOutcome['events'] = [];
  const byIndex = new Map(opts.events.map((e) => [e.atCall, e]));
  const intervalMs = 1000 / opts.ratePerSecond;
  const startedAt = Date.now();
  let next = 0;

  async function worker(): Promise<void> {
    for (;;) {
      const index = next++;
      if (index >= opts.calls) return;
      const due = startedAt + index * intervalMs - Date.now();
      if (due > 0) await sleep(due, undefined, { signal: opts.signal });
      const event = byIndex.get(index);
      if (event) {
        const at = Date.now();
        try {
          await event.run();
          events.push({ name: event.name, at, doneAt: Date.now() });
        } catch (err) {
          events.push({ name: event.name, at, doneAt: Date.now(), error: (err as Error).message });
        }
      }
      const record = await oneCall(opts, index);
      records.push(record);
      opts.onCall(record);
    }
  }

  await Promise.all(Array.from({ length: Math.max(1, opts.workers) }, () => worker()));
  records.sort((a, b) => a.index - b.index);
  return { records, events, startedAt, endedAt: Date.now() };
}
