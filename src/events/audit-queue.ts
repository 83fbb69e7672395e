import type { Logger } from 'pino';
import type { AuditInput, AuditLog } from './audit.ts';

export interface AuditQueueOptions {
  audit: AuditLog;
  logger: Logger;
  /** Entries held in memory at most; past it, callers are refused (fail closed). */
  capacity?: number;
  /** Entries per transaction. */
  batchSize?: number;
  /**
   * How long an entry that finds the queue idle waits for others to join its batch (default
   * 2 ms). While entries keep coming, each write starts when the one before it ends, with what
   * arrived meanwhile (group commit): batches grow with the load and the write's latency. Small
   * on purpose: a batch that gathered for tens of ms is a burst of CPU (hashing, the store's
   * write) that the calls running at that moment wait behind; measured in docs/performance.md.
   */
  flushIntervalMs?: number;
  /** Consecutive write failures after which the queue refuses new reservations. */
  failuresBeforeRefusing?: number;
  /**
   * Slots one key (an agent) may hold reserved at once: its fair share, so one agent's stalled
   * calls cannot hold the capacity every other agent needs. Default: a twentieth of the capacity.
   */
  perKeyCapacity?: number;
  /**
   * An entry unwritten for longer than this (ms) makes the queue refuse reservations until its
   * backlog is written (WARRANT_AUDIT_WRITE_DEADLINE_MS). Default 5000.
   */
  writeDeadlineMs?: number;
  /** The clock the deadline is measured with (epoch ms). */
  now?: () => number;
}

export interface Reservation {
  /** Hands the entry over; it is written with the next batch. */
  commit(entry: AuditInput): void;
  /** The call ended without anything to record. */
  cancel(): void;
}

/**
 * Batched audit writes off the request's critical path, without a way to lose them silently:
 * a request reserves its slot before it does anything (so a full queue refuses the call up
 * front), commits its entry when done, and entries are written in batches, one transaction
 * each, retried until written. While writes keep failing the queue refuses new reservations:
 * the proxy stops rather than run unaudited. So does an entry left unwritten past the write
 * deadline (a store that hangs rather than fails), until everything held is written: entries are
 * never dropped. A reservation made for a key (the agent) counts against that key's share until
 * it is committed or cancelled.
 */
export function createAuditQueue(opts: AuditQueueOptions) {
  const capacity = opts.capacity ?? 10_000;
  const batchSize = opts.batchSize ?? 500;
  const flushIntervalMs = opts.flushIntervalMs ?? 2;
  const failLimit = opts.failuresBeforeRefusing ?? 3;
  const perKey = Math.max(1, opts.perKeyCapacity ?? Math.floor(capacity / 20));
  const deadlineMs = opts.writeDeadlineMs ?? 5_000;
  const now = opts.now ?? Date.now;
  const pending: AuditInput[] = [];
  /** When each pending entry was committed (same order as `pending`). */
  const pendingAt: number[] = [];
  let overdue = false;
  const heldBy = new Map<string, number>();
  let reserved = 0;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;
  let closed = false;

  const schedule = (delay = flushIntervalMs) => {
    if (!timer && !flushing) timer = setTimeout(() => void flush(), delay);
  };

  async function writeBatches(): Promise<void> {
    while (pending.length) {
      const batch = pending.slice(0, batchSize);
      try {
        await opts.audit.append(batch);
        pending.splice(0, batch.length);
        pendingAt.splice(0, batch.length);
        failures = 0;
        if (overdue && !pending.length) {
          overdue = false;
          opts.logger.warn('audit backlog written; accepting calls again');
        }
      } catch (err) {
        failures++;
        opts.logger.error({ err: (err as Error).message, pending: pending.length, failures }, 'audit write failed; will retry');
        if (closed) throw err;
        await new Promise((r) => setTimeout(r, Math.min(5_000, 50 * 2 ** failures)));
      }
    }
  }

  /** Past the deadline: refusing until the backlog is written (checked on use, so a hung write cannot hide it). */
  function isOverdue(): boolean {
    if (!overdue && pendingAt.length && now() - pendingAt[0]! > deadlineMs) {
      overdue = true;
      opts.logger.error({ pending: pending.length, deadline_ms: deadlineMs }, 'audit entries unwritten past the deadline; refusing calls until they are written');
    }
    return overdue;
  }

  function flush(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    if (flushing) return flushing;
    flushing = writeBatches().finally(() => {
      flushing = undefined;
      if (pending.length) schedule();
    });
    return flushing;
  }

  return {
    /**
     * A slot for one entry, or undefined when the queue is full, the store is failing, or `key`
     * (an agent id) already holds its share (`hasShareLeft` tells which).
     */
    reserve(key?: string): Reservation | undefined {
      if (closed || failures >= failLimit || pending.length + reserved >= capacity || isOverdue()) return undefined;
      const held = key === undefined ? 0 : (heldBy.get(key) ?? 0);
      if (held >= perKey) return undefined;
      reserved++;
      if (key !== undefined) heldBy.set(key, held + 1);
      let done = false;
      const release = () => {
        done = true;
        reserved--;
        if (key === undefined) return;
        const n = heldBy.get(key)! - 1;
        if (n === 0) heldBy.delete(key);
        else heldBy.set(key, n);
      };
      return {
        commit(entry) {
          if (done) return;
          release();
          pending.push(entry);
          pendingAt.push(now());
          if (pending.length >= batchSize) void flush();
          else schedule();
        },
        cancel() {
          if (done) return;
          release();
        },
      };
    },
    /** Whether `key` may reserve another slot as far as its share goes (the queue may still be full). */
    hasShareLeft: (key: string) => (heldBy.get(key) ?? 0) < perKey,
    /** Slots one key may hold at once. */
    perKeyCapacity: perKey,
    /** Taking reservations: not closed, writes not failing, nothing unwritten past the deadline. */
    healthy: () => !closed && failures < failLimit && !isOverdue(),
    depth: () => pending.length + reserved,
    flush,
    /** Writes what is pending; later reservations are refused. */
    async close(): Promise<void> {
      closed = true;
      await flush();
    },
  };
}

export type AuditQueue = ReturnType<typeof createAuditQueue>;
