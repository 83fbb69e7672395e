import { Command } from 'commander';

/** A whole number in decimal digits within [min, max], or an Error naming the flag. */
function bounded(flag: string, min: number, max: number) {
  return (value: string): number => {
    const n = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(n >= min && n <= max)) throw new Error(`${flag}: a whole number from ${min} to ${max}`);
    return n;
  };
}

export function demoCommand(): Command {
  return new Command('demo')
    .description(
      'Show Warrant at work in about half a minute, with nothing to set up: the sandbox IdP with 3-second rotating tokens, ' +
        'Warrant on a temporary store, the real connect flow, an agent with a narrow grant, and an overnight batch of proxied calls ' +
        'that meets an IdP outage and then a revocation. Prints a summary and exits 1 if Warrant did not behave as promised. ' +
        'Leaves nothing running and nothing on disk.',
    )
    .option('--calls <n>', 'calls in the batch', '1000')
    .option('--rate <per-second>', 'pace of the batch', '60')
    .option('--workers <n>', 'concurrent callers', '4')
    .option('--outage-seconds <n>', 'how long the IdP token endpoint answers 503', '4')
    .option('--no-wait', 'exit right after the summary (the default without a terminal)')
    .option('--verbose', "Warrant's and the sandbox's log lines on stderr")
    .action(async (raw: { calls: string; rate: string; workers: string; outageSeconds: string; wait: boolean; verbose?: boolean }) => {
      const opts = {
        calls: bounded('--calls', 10, 100_000)(raw.calls),
        ratePerSecond: bounded('--rate', 1, 2_000)(raw.rate),
        workers: bounded('--workers', 1, 32)(raw.workers),
        outageSeconds: bounded('--outage-seconds', 1, 60)(raw.outageSeconds),
        tokenTtlSeconds: 3,
        wait: raw.wait,
        verbose: raw.verbose === true,
      };
      // Loaded on use: the other commands need not load the sandbox.
      const { runDemo } = await import('../demo/index.ts');
      const abort = new AbortController();
      let interrupted = false;
      const onSignal = () => {
        // First Ctrl-C: stop what runs and clean up; a second one leaves at once.
        if (interrupted) process.exit(130);
        interrupted = true;
        abort.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const tty = process.stdout.isTTY === true && process.stdin.isTTY === true;
      let code: number;
      try {
        code = await runDemo(
          opts,
          {
            write: (s) => void process.stdout.write(s),
            tty,
            waitForEnter: (signal) =>
              new Promise<void>((resolve) => {
                const done = () => {
                  process.stdin.off('data', done);
                  signal.removeEventListener('abort', done);
                  process.stdin.pause();
                  resolve();
                };
                process.stdin.on('data', done);
                signal.addEventListener('abort', done, { once: true });
                process.stdin.resume();
              }),
          },
          abort.signal,
        );
      } catch (err) {
        if (!interrupted) throw err;
        code = 130;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      process.exitCode = code;
      // Everything is closed by now; should a stray handle (a keep-alive socket) linger, it must
      // not keep the demo's process alive.
      setTimeout(() => process.exit(code), 2_000).unref();
    });
}
