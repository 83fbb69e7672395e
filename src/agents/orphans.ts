import type { Logger } from 'pino';
import { defaults } from '../config/index.ts';
import type { AuditEntry, AuditInput, AuditLog, EventBus } from '../events/index.ts';
import { LockTimeoutError, type Locks } from '../locks/index.ts';
import { isStoreUnavailable, type Store } from '../store/index.ts';
import { iso } from '../util/time.ts';
import type { AgentsRepo, OrphanReason, OrphanRow } from './repo.ts';

// Orphans (issue 11, item 2): agents that are not revoked but have lost their reason to exist —
// owner offboarded or unknown, no usable connection, expired, or unused for WARRANT_AGENT_IDLE_DAYS.
// A periodic sweep announces each one once with an `agent.orphaned` event (audit entry, webhook):
// the announcement is claimed by a conditional update of `agents.orphaned_at`, so however many
// instances sweep, and however often, an orphan episode makes one event. An agent that stops being
// an orphan (used again, its owner re-connected) has its episode closed by the next sweep, so a
// later episode is announced again. The lock only spares instances the same scan; correctness
// rests on the claim.
// WARRANT_ORPHAN_POLICY=suspend also suspends the orphan, in the same transaction: its key is then
// refused with `agent_suspended` until an admin reactivates it (PATCH /v1/agents/{id}
// {"status":"active"}). An agent only past its `expires_at` is not suspended: its key is refused
// already. A reactivated agent is not suspended again for the same episode (the admin's decision
// stands); only a new episode suspends it again.

export type OrphanPolicy = 'report' | 'suspend';

const DAY_MS = 86_400_000;
const SWEEP_LOCK = 'agents:orphan-sweep';

export interface OrphanSweepOptions {
  /** WARRANT_AGENT_IDLE_DAYS: unused this many days makes an agent `idle`; 0 turns idleness off. */
  idleDays: number;
  /** WARRANT_ORPHAN_POLICY. */
  policy: OrphanPolicy;
  /** How often start() sweeps. */
  intervalMs: number;
  /** Orphans announced per round; a sweep makes rounds until none is left (at most `maxRounds`). */
  batchSize: number;
  maxRounds: number;
}

export const orphanSweepDefaults: OrphanSweepOptions = {
  idleDays: defaults.agentIdleDays,
  policy: defaults.orphanPolicy,
  intervalMs: defaults.orphanSweepIntervalMs,
  batchSize: 200,
  maxRounds: 25,
};

export interface SweepReport {
  /** `agent.orphaned` events this sweep sent. */
  announced: number;
  /** Of them, agents suspended by the policy. */
  suspended: number;
  /** Orphan episodes closed (the agent is no longer an orphan). */
  recovered: number;
  /** The sweep did not run: another one held the lock. */
  skipped?: true;
}

export interface OrphanSweepDeps {
  store: Store;
  audit: AuditLog;
  bus: EventBus;
  clock: { now(): number };
  logger: Logger;
  repo: AgentsRepo;
  /** Drops a suspended agent's cached key. */
  invalidate(keyId: string): void | Promise<void>;
  /** Spares instances the same scan; absent: none. */
  locks?: Pick<Locks, 'withLock'>;
  options?: Partial<OrphanSweepOptions>;
}

/** Reasons that make the suspend policy act: anything but "only expired" (an expired key is refused already). */
export function suspends(reasons: readonly OrphanReason[]): boolean {
  return reasons.some((r) => r !== 'expired');
}

export function createOrphanSweep(deps: OrphanSweepDeps) {
  const { store, audit, bus, clock, repo } = deps;
  const options = { ...orphanSweepDefaults, ...deps.options };
  const idleMs = Math.max(0, options.idleDays) * DAY_MS;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = true;

  /** Announces one orphan (and suspends it under the policy), unless another sweep did already. */
  async function announce(orphan: OrphanRow, now: number): Promise<{ announced: boolean; suspended: boolean }> {
    const suspend = options.policy === 'suspend' && suspends(orphan.reasons);
    const { entries, suspended } = await store.transaction(async (trx) => {
      if (!(await repo.claimOrphaned(orphan.id, now, trx))) return { entries: [] as AuditEntry[], suspended: false };
      const suspended = suspend && (await repo.markSuspended(orphan.id, now, orphan.reasons, trx));
      const base = { name: orphan.name, owner: orphan.owner };
      const inputs: AuditInput[] = [
        {
          type: 'agent.orphaned',
          actor: 'system',
          subject: `agent:${orphan.id}`,
          data: {
            ...base,
            reasons: orphan.reasons,
            last_used_at: iso(orphan.last_used_at),
            ...(orphan.reasons.includes('idle') ? { idle_days: options.idleDays } : {}),
            policy: options.policy,
            action: suspended ? 'suspended' : 'reported',
          },
        },
      ];
      if (suspended) inputs.push({ type: 'agent.suspended', actor: 'system', subject: `agent:${orphan.id}`, data: { ...base, reasons: orphan.reasons } });
      return { entries: await audit.append(inputs, trx), suspended };
    });
    if (suspended) await deps.invalidate(orphan.key_id);
    bus.publish(entries);
    return { announced: entries.length > 0, suspended };
  }

  async function sweepNow(): Promise<SweepReport> {
    const now = clock.now();
    const report: SweepReport = { announced: 0, suspended: 0, recovered: await repo.clearRecovered(now, idleMs) };
    for (let round = 0; round < options.maxRounds; round++) {
      const orphans = await repo.orphans({ unannounced: true, idleMs, limit: options.batchSize }, now);
      for (const orphan of orphans) {
        const r = await announce(orphan, now);
        if (r.announced) report.announced++;
        if (r.suspended) report.suspended++;
      }
      if (orphans.length < options.batchSize) break;
    }
    if (report.announced || report.recovered) deps.logger.info({ ...report, policy: options.policy }, 'orphan sweep');
    return report;
  }

  /**
   * One sweep. `lock: false` skips the lock (the claim alone keeps the event single; tests).
   * While another sweep holds the lock this one is skipped.
   */
  async function sweep(opts: { lock?: boolean } = {}): Promise<SweepReport> {
    if (!deps.locks || opts.lock === false) return sweepNow();
    try {
      return await deps.locks.withLock(SWEEP_LOCK, { ttlMs: 5 * 60_000, waitMs: 0 }, () => sweepNow());
    } catch (err) {
      if (err instanceof LockTimeoutError) return { announced: 0, suspended: 0, recovered: 0, skipped: true };
      throw err;
    }
  }

  const loop = () => {
    if (stopped) return;
    running = sweep()
      .catch((err: unknown) => {
        if (isStoreUnavailable(err)) deps.logger.warn({ err: (err as Error).message }, 'orphan sweep failed: the store is unreachable');
        else deps.logger.error({ err }, 'orphan sweep failed');
      })
      .finally(() => {
        running = undefined;
        if (!stopped) timer = setTimeout(loop, options.intervalMs * (0.9 + Math.random() * 0.2));
      });
  };

  return {
    options: Object.freeze({ ...options }),
    sweep,
    /** Sweeps every `intervalMs` (the first time within one interval, jittered across instances). */
    start(): void {
      if (!stopped) return;
      stopped = false;
      timer = setTimeout(loop, Math.random() * Math.min(options.intervalMs, 10_000));
    },
    /** Stops the timer and waits for a sweep in flight. */
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

export type OrphanSweep = ReturnType<typeof createOrphanSweep>;
