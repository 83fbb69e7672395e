// One Warrant instance for bench/scale.ts, alone in its process (so its memory is its own):
// configured from the environment it is forked with, no scheduler. Answers the parent over IPC:
//   memory → a full GC (twice), then process.memoryUsage();  flush → the audit queue written;
//   close  → shut down and exit.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant } from '../../src/warrant.ts';
import { createLogger } from '../../src/http/logger.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

type Message = { type: 'memory' | 'flush' | 'close'; id: number };

const warrant = await createWarrant(loadConfig(process.env), { logger: createLogger('error'), notice: () => {}, scheduler: false });
const url = await warrant.listen();

process.on('message', async (m: Message) => {
  try {
    if (m.type === 'memory') {
      // Settled: a few turns of the loop for finalizers and freed sockets, then full collections.
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 50));
        gc();
      }
      process.send!({ id: m.id, memory: process.memoryUsage() });
    } else if (m.type === 'flush') {
      await warrant.auditQueue.flush();
      process.send!({ id: m.id });
    } else {
      await warrant.close({ graceMs: 2_000 });
      process.send!({ id: m.id });
      process.exit(0);
    }
  } catch (err) {
    process.send!({ id: m.id, error: String((err as Error).stack ?? err) });
  }
});
process.send!({ type: 'ready', url });
