import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { KeyRingSource } from '../crypto/index.ts';
import type { KeysRepo } from './keys.ts';

export interface KeyHeartbeatDeps {
  keys: KeysRepo;
  ring: KeyRingSource;
  now: () => number;
  /** Names this process in `key_usage` and in `warrant keys rotate`'s report. */
  instanceId?: string;
  /** The lease on the active key is renewed this often (default 60 s) and lasts three times as long. */
  intervalMs?: number;
  /** How often the ring is looked at for a new active key (default 1 s; the file ring itself re-reads at most once a second). */
  checkMs?: number;
  /** A key switched away from stays leased this long, for seals already made with it and not yet written (default 5 s). */
  switchGraceMs?: number;
  onError?: (err: unknown) => void;
}

export const newInstanceId = () => `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;

/**
 * Tells other processes which key this one seals with (`key_usage`), so `vault.rotate()` in any
 * of them retires a key only once no running instance may still seal with it: at start, every
 * `intervalMs`, and at once when the active key changes (the old one then keeps a short lease).
 * A crashed instance's lease runs out by itself; a clean stop releases it.
 */
export function createKeyHeartbeat(deps: KeyHeartbeatDeps) {
  const { keys, ring, now } = deps;
  const instanceId = deps.instanceId ?? newInstanceId();
  const intervalMs = deps.intervalMs ?? 60_000;
  const leaseMs = 3 * intervalMs;
  const graceMs = deps.switchGraceMs ?? 5_000;
  let reported: string | undefined;
  let beatAt = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  async function beat(): Promise<void> {
    const active = ring.current().activeId;
    const t = now();
    if (reported !== undefined && reported !== active) await keys.stampUsage(instanceId, reported, t, t + graceMs);
    await keys.stampUsage(instanceId, active, t, t + leaseMs);
    reported = active;
    beatAt = t;
  }

  function tick(): Promise<void> {
    const due = ring.current().activeId !== reported || now() - beatAt >= intervalMs;
    if (due) running = running.then(beat).catch((err: unknown) => deps.onError?.(err));
    return running;
  }

  return {
    instanceId,
    /** Stamps the active key (awaited: the lease exists before anything is sealed), then keeps it current. */
    async start(checkMs = deps.checkMs ?? 1_000): Promise<void> {
      await beat();
      timer ??= setInterval(() => void tick(), checkMs);
      timer.unref();
    },
    /** Renews if due or the active key changed (the timer calls this; tests may too); settles when the stamp is written. */
    tick,
    /** Stops renewing and releases this instance's leases. */
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running;
      await keys.releaseUsage(instanceId);
    },
  };
}

export type KeyHeartbeat = ReturnType<typeof createKeyHeartbeat>;
