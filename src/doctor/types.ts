// One line of `warrant doctor`'s report. Wire names are the report's own (`--json` prints them).

export type Verdict = 'ok' | 'warn' | 'error';

export interface Finding {
  /** The check family: `discovery`, `client`, `clock`, `scopes` … */
  check: string;
  /** What was checked: `provider/environment`, or `provider/environment/connection`. */
  subject: string;
  verdict: Verdict;
  /** What was found. Never a token or a client secret (a client id is fine). */
  detail: string;
  /** What to do about it; empty when the verdict is ok. */
  fix: string;
}

export const ok = (check: string, subject: string, detail: string): Finding => ({ check, subject, verdict: 'ok', detail, fix: '' });
export const warn = (check: string, subject: string, detail: string, fix: string): Finding => ({ check, subject, verdict: 'warn', detail, fix });
export const error = (check: string, subject: string, detail: string, fix: string): Finding => ({ check, subject, verdict: 'error', detail, fix });

/** A server's `Date` header against the local clock, from one answer. */
export interface ClockSample {
  url: string;
  /** The server's time (the `Date` header, plus half its one-second resolution), epoch ms. */
  serverMs: number;
  /** Local time halfway through the exchange, epoch ms. */
  localMs: number;
  /** The exchange's round trip, ms: the sample is no more precise than half of it. */
  roundTripMs: number;
}
