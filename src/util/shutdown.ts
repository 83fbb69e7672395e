import type { Server } from 'node:http';
import type { Logger } from 'pino';

/** What a shutdown left undone; `drained` is false when the grace ran out (the process exits 1). */
export interface ShutdownReport {
  drained: boolean;
  /** Steps that did not finish in time, e.g. `http requests (3 in flight)`. */
  abandoned: string[];
  /** Steps that failed (logged); they do not make the shutdown "abandoned". */
  failed: string[];
  elapsedMs: number;
}

/**
 * Runs close steps, each bounded by a deadline, and records which did not finish. A step that
 * misses its deadline keeps running in the background: the caller exits regardless, which is
 * the point (a hung upstream or a stuck pool must not keep the process alive).
 */
export function createShutdown(logger: Logger, now: () => number = Date.now) {
  const started = now();
  const abandoned: string[] = [];
  const failed: string[] = [];
  return {
    /** Resolves true when `work` settled before `deadlineAt` (epoch ms); `late` names what was abandoned. */
    async step(name: string, work: () => Promise<unknown>, deadlineAt: number, late: () => string = () => name): Promise<boolean> {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'late'>((resolve) => {
        // Not unref'd: the deadline itself must keep the process alive long enough to be reported.
        timer = setTimeout(() => resolve('late'), Math.max(0, deadlineAt - now()));
      });
      let run: Promise<unknown>;
      try {
        run = work();
      } catch (err) {
        run = Promise.reject(err);
      }
      const outcome = await Promise.race([
        run.then(
          () => 'ok' as const,
          (err: unknown) => {
            logger.error({ err, step: name }, 'shutdown step failed');
            return 'failed' as const;
          },
        ),
        timeout,
      ]);
      clearTimeout(timer);
      if (outcome === 'late') abandoned.push(late());
      if (outcome === 'failed') failed.push(name);
      return outcome !== 'late';
    },
    report(): ShutdownReport {
      return { drained: abandoned.length === 0, abandoned: [...abandoned], failed: [...failed], elapsedMs: now() - started };
    },
  };
}

/** Counts requests the server is answering (proxied calls included, which Fastify never sees). */
export function trackInFlight(server: Server): () => number {
  let inFlight = 0;
  server.on('request', (_req, res) => {
    inFlight++;
    res.once('close', () => inFlight--);
  });
  return () => inFlight;
}
