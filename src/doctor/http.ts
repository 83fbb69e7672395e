import { MAX_ANSWER_BYTES, readCapped } from '../oauth/index.ts';
import type { ClockSample } from './types.ts';

// Every call doctor makes: one GET or POST, bounded in time and size, that never throws. A
// failure comes back as a reason fit for the report (network code, TLS, timeout), never a value
// of the request.

/** Longest wait for one answer (doctor is a diagnosis, not a retry loop). */
export const DOCTOR_TIMEOUT_MS = 5_000;
const MAX_BODY_BYTES = MAX_ANSWER_BYTES;

export type Answer =
  | { ok: true; status: number; headers: Headers; text: string; clock?: ClockSample }
  | { ok: false; reason: string };

export async function request(url: string, init: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}): Promise<Answer> {
  const started = Date.now();
  try {
    const res = await fetch(url, {
      method: init.method ?? 'GET',
      headers: { accept: 'application/json', ...init.headers },
      body: init.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(init.timeoutMs ?? DOCTOR_TIMEOUT_MS),
    });
    const text = await readText(res);
    const ended = Date.now();
    return { ok: true, status: res.status, headers: res.headers, text, clock: clockSample(url, res.headers, started, ended) };
  } catch (err) {
    return { ok: false, reason: failureReason(err) };
  }
}

async function readText(res: Response): Promise<string> {
  const read = await readCapped(res, MAX_BODY_BYTES);
  if (read.overflow) throw Object.assign(new Error('answer larger than 1 MiB'), { code: 'TOO_LARGE' });
  return Buffer.from(read.bytes).toString('utf8');
}

function clockSample(url: string, headers: Headers, started: number, ended: number): ClockSample | undefined {
  const date = Date.parse(headers.get('date') ?? '');
  if (!Number.isFinite(date)) return undefined;
  // RFC 9110 §5.6.7: whole seconds, so the server's time is somewhere in [date, date + 1 s).
  return { url, serverMs: date + 500, localMs: (started + ended) / 2, roundTripMs: ended - started };
}

/** A short reason for a failed exchange: the network or TLS code, or a timeout. */
export function failureReason(err: unknown): string {
  const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${DOCTOR_TIMEOUT_MS / 1000} s`;
  if (e?.code === 'TOO_LARGE') return 'the answer is larger than 1 MiB';
  const code = e?.cause?.code ?? e?.code;
  if (code && /CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) return `TLS failure (${code})`;
  if (code) return `unreachable (${code})`;
  return 'unreachable';
}
