// Token buckets: each key holds up to `burst` tokens, refilled at `ratePerSecond`; a call takes one.
// A call charged to several buckets (an agent's and a connection's) takes a token from each of
// them or from none, so a refusal by one bucket costs the others nothing.

export interface BucketSpec {
  key: string;
  ratePerSecond: number;
  burst: number;
}

/** Why a take was refused: how long until a token is back, and which spec ran dry (its index). */
export interface Refusal {
  waitMs: number;
  index: number;
}

export interface TokenBuckets {
  readonly kind: 'memory' | 'redis';
  /** Takes one token from every bucket, or none and says why; a promise only when the buckets are remote. */
  take(specs: readonly BucketSpec[]): Refusal | null | Promise<Refusal | null>;
  close(): Promise<void>;
}

interface Level {
  tokens: number;
  at: number;
}

/** Buckets held past this many keys are swept of the ones that have refilled (and so hold nothing worth keeping). */
const SWEEP_AT = 10_000;

/** In-process buckets in a Map: a take is a lookup and a little arithmetic. */
export function createMemoryBuckets(opts: { now?: () => number } = {}) {
  const now = opts.now ?? Date.now;
  const levels = new Map<string, Level & { full: number }>();

  function sweep(t: number): void {
    for (const [key, l] of levels) if (t >= l.full) levels.delete(key);
  }

  function take(specs: readonly BucketSpec[]): Refusal | null {
    const t = now();
    let refusal: Refusal | null = null;
    const tokens: number[] = [];
    for (let i = 0; i < specs.length; i++) {
      const s = specs[i]!;
      const l = levels.get(s.key);
      const level = l ? Math.min(s.burst, l.tokens + (Math.max(0, t - l.at) * s.ratePerSecond) / 1000) : s.burst;
      tokens.push(level);
      if (level < 1) {
        const waitMs = Math.ceil(((1 - level) * 1000) / s.ratePerSecond);
        if (!refusal || waitMs > refusal.waitMs) refusal = { waitMs, index: i };
      }
    }
    if (refusal) return refusal;
    for (let i = 0; i < specs.length; i++) {
      const s = specs[i]!;
      const left = tokens[i]! - 1;
      const full = t + ((s.burst - left) * 1000) / s.ratePerSecond;
      const l = levels.get(s.key);
      if (l) {
        l.tokens = left;
        l.at = t;
        l.full = full;
      } else levels.set(s.key, { tokens: left, at: t, full });
    }
    if (levels.size > SWEEP_AT) sweep(t);
    return null;
  }

  return {
    kind: 'memory' as const,
    take,
    /** Buckets currently held (refilled ones are dropped now and then). */
    size: () => levels.size,
    async close() {
      levels.clear();
    },
  } satisfies TokenBuckets & Record<string, unknown>;
}
