// A second (third …) Warrant instance in its own process, for the multi-instance tests. It runs
// the scheduler and hammers getFreshToken on one connection, then prints a JSON report.
// Settings come from the environment, like `warrant serve`; WORKER_CONNECTION, WORKER_MS,
// WORKER_CONCURRENCY drive the load.
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant } from '../../src/warrant.ts';
import { createLogger } from '../../src/http/logger.ts';

const connection = process.env.WORKER_CONNECTION!;
const durationMs = Number(process.env.WORKER_MS ?? 10_000);
const concurrency = Number(process.env.WORKER_CONCURRENCY ?? 20);

const warrant = await createWarrant(loadConfig(), { logger: createLogger('error'), notice: () => {} });
await warrant.listen();
process.stdout.write('ready\n');
const started = Date.now();
let uses = 0;
let refreshedHere = 0;
const failures: string[] = [];
const tokens = new Set<string>();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (Date.now() - started < durationMs) {
      try {
        const t = await warrant.tokens.getFreshToken(connection, { minTtlSeconds: 0.2 });
        if (t.refreshed) refreshedHere++;
        tokens.add(t.accessToken.slice(-12));
      } catch (err) {
        failures.push((err as Error).message);
      }
      uses++;
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 10));
    }
  }),
);
await warrant.close();
process.stdout.write(`${JSON.stringify({ uses, refreshedHere, distinctTokens: tokens.size, failures: failures.slice(0, 5), failureCount: failures.length })}\n`);
