// A timed outage: the token endpoint (and, if asked, the API) answers 503 until a deadline, then
// heals by itself. Unlike a `count` fault, it lasts as long as a real incident, however many
// requests arrive meanwhile.

export interface OutageView {
  /** ISO time the token endpoint comes back, or null when it is up. */
  tokenEndpointUntil: string | null;
  /** ISO time the API comes back, or null when it is up. */
  apiUntil: string | null;
}

export interface OutageState {
  /** Starts (or, with 0 seconds, ends) an outage of the token endpoint, and of the API with `api`. */
  start(seconds: number, opts?: { api?: boolean }): OutageView;
  /** Seconds (rounded up) until `target` is back, or 0 when it is up. */
  secondsLeft(target: 'tokenEndpoint' | 'api'): number;
  view(): OutageView;
}

export function createOutageState(now: () => number = Date.now): OutageState {
  const until = { tokenEndpoint: 0, api: 0 };
  const iso = (t: number) => (t > now() ? new Date(t).toISOString() : null);
  const view = (): OutageView => ({ tokenEndpointUntil: iso(until.tokenEndpoint), apiUntil: iso(until.api) });
  return {
    start(seconds, opts = {}) {
      if (!Number.isSafeInteger(seconds) || seconds < 0) throw new TypeError('an outage lasts a whole number of seconds, 0 or more');
      const end = now() + seconds * 1000;
      until.tokenEndpoint = end;
      // Without `api`, an API outage still running is left alone; 0 seconds ends both.
      if (opts.api || seconds === 0) until.api = end;
      return view();
    },
    secondsLeft(target) {
      const left = until[target] - now();
      return left > 0 ? Math.ceil(left / 1000) : 0;
    },
    view,
  };
}
