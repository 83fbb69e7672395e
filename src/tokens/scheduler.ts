import type { Logger } from 'pino';
import { isStoreUnavailable, type Store } from '../store/index.ts';
import { isWarrantError } from '../errors/index.ts';
import type { Clock, TokenService } from './service.ts';
import { EXPIRY_CHECK_INTERVAL_MS, type ExpiryNotices } from './expiry-notices.ts';

export interface SchedulerOptions {
  store: Store;
  tokens: TokenService;
  clock: Clock;
  logger: Logger;
  intervalMs: number;
  /** Connections claimed per tick. */
  batchSize?: number;
  /** How far a claimed connection's due time is pushed while its refresh runs. */
  leaseMs?: number;
  /** Refreshes running at once against one provider. */
  perProviderConcurrency?: number;
  /** `credential.expiring` notices: looked for on the first pass, then every `expiryCheckIntervalMs`. */
  expiry?: ExpiryNotices;
  expiryCheckIntervalMs?: number;
  /** Rotation schedules (rotation-schedules.ts): a pass on the first loop, then every `rotationCheckIntervalMs`. */
  rotations?: { run(opts: { scheduled: true; actor: string }): Promise<unknown> };
  rotationCheckIntervalMs?: number;
}

export interface TickReport {
  claimed: number;
  refreshed: number;
  failed: number;
}

/**
 * Refresh-ahead: every `intervalMs`, claim the connections whose refresh is due and refresh
 * them, a few at a time per provider. Several instances may run it: claims are disjoint
 * (SKIP LOCKED on PostgreSQL) and the token service's lock makes a refresh happen once anyway.
 * The same loop sends `credential.expiring` notices (expiry-notices.ts): on its first pass, then
 * every few minutes; each notice is claimed in the store, so instances never repeat one. Beside it
 * runs the rotation pass (rotation-schedules.ts), as often, one at a time across instances.
 */
export function createScheduler(opts: SchedulerOptions) {
  const batchSize = opts.batchSize ?? 200;
  const leaseMs = opts.leaseMs ?? 60_000;
  const perProvider = opts.perProviderConcurrency ?? 4;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<TickReport> | undefined;
  let stopped = true;
  let expiryCheckAt = 0;
  let rotationCheckAt = 0;
  let rotating: Promise<void> | undefined;

  async function runLimited<T>(items: T[], keyOf: (t: T) => string, fn: (t: T) => Promise<void>): Promise<void> {
    const queues = new Map<string, T[]>();
    for (const item of items) {
      const k = keyOf(item);
      if (!queues.has(k)) queues.set(k, []);
      queues.get(k)!.push(item);
    }
    const workers: Promise<void>[] = [];
    for (const queue of queues.values()) {
      for (let i = 0; i < Math.min(perProvider, queue.length); i++) {
        workers.push(
          (async () => {
            for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
          })(),
        );
      }
    }
    await Promise.all(workers);
  }

  async function tick(): Promise<TickReport> {
    const claimed = await opts.store.connections.claimDue(opts.clock.now(), batchSize, leaseMs, opts.store.dialect);
    const report: TickReport = { claimed: claimed.length, refreshed: 0, failed: 0 };
    await runLimited(
      claimed,
      (row) => row.provider,
      async (row) => {
        try {
          const r = await opts.tokens.getFreshToken(row.id, { refreshedAtOrBefore: row.last_refreshed_at ?? row.created_at, actor: 'scheduler' });
          if (r.refreshed) report.refreshed++;
          else if (r.stale) report.failed++;
        } catch (err) {
          report.failed++;
          if (!isWarrantError(err, 'reauth_required') && !isWarrantError(err, 'refresh_unavailable')) {
            opts.logger.error({ err, connection: row.id }, 'scheduled refresh failed');
          }
        }
      },
    );
    return report;
  }

  /**
   * When to look again: at once after a full batch (more are due), else when the next connection
   * falls due, but never later than the interval (another instance may add or move due times)
   * nor sooner than 50 ms. Short-lived tokens' skew windows can be shorter than the interval.
   */
  async function nextDelay(report: TickReport): Promise<number> {
    const jittered = opts.intervalMs * (0.9 + Math.random() * 0.2);
    if (report.claimed >= batchSize) return 0;
    const due = await opts.store.connections.nextDueAt().catch(() => null);
    if (due === null) return jittered;
    return Math.max(50, Math.min(jittered, due - opts.clock.now()));
  }

  /** Sends the `credential.expiring` notices now due; how many this instance sent. */
  async function checkExpiry(): Promise<number> {
    return opts.expiry ? opts.expiry.check() : 0;
  }

  const loop = () => {
    if (stopped) return;
    running = (async () => {
      let report: TickReport = { claimed: 0, refreshed: 0, failed: 0 };
      try {
        report = await tick();
      } catch (err) {
        if (isStoreUnavailable(err)) opts.logger.warn({ err: (err as Error).message }, 'scheduler tick failed: the store is unreachable');
        else opts.logger.error({ err }, 'scheduler tick failed');
      }
      if (opts.expiry && opts.clock.now() >= expiryCheckAt && !stopped) {
        expiryCheckAt = opts.clock.now() + (opts.expiryCheckIntervalMs ?? EXPIRY_CHECK_INTERVAL_MS);
        await checkExpiry().catch((err: unknown) => {
          if (isStoreUnavailable(err)) opts.logger.warn({ err: (err as Error).message }, 'expiry check failed: the store is unreachable');
          else opts.logger.error({ err }, 'expiry check failed');
        });
      }
      if (opts.rotations && !rotating && opts.clock.now() >= rotationCheckAt && !stopped) {
        // Beside the loop, not in it: a pass may wait on IdPs, refresh-ahead must not wait on it.
        rotationCheckAt = opts.clock.now() + (opts.rotationCheckIntervalMs ?? EXPIRY_CHECK_INTERVAL_MS);
        rotating = opts.rotations
          .run({ scheduled: true, actor: 'scheduler' })
          .then(() => undefined)
          .catch((err: unknown) => {
            if (isStoreUnavailable(err)) opts.logger.warn({ err: (err as Error).message }, 'rotation pass failed: the store is unreachable');
            else opts.logger.error({ err }, 'rotation pass failed');
          })
          .finally(() => {
            rotating = undefined;
          });
      }
      const delay = await nextDelay(report);
      if (!stopped) timer = setTimeout(loop, delay);
      return report;
    })().finally(() => {
      running = undefined;
    });
  };

  return {
    tick,
    checkExpiry,
    start() {
      if (!stopped) return;
      stopped = false;
      timer = setTimeout(loop, Math.random() * opts.intervalMs);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      await rotating;
    },
  };
}

export type Scheduler = ReturnType<typeof createScheduler>;
