// One Warrant instance starting on a shared store, for the chain key tests
// (test/events/chain-key.test.ts): opens the store named by its environment, prints `ready`, waits
// for `go` on stdin (so every instance loads the chain key at the same moment), loads it, and
// prints one JSON line with a fingerprint of the key (never the key).
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { createStore } from '../../src/store/index.ts';
import { parseKeyRing } from '../../src/crypto/index.ts';
import { loadChainKey } from '../../src/events/index.ts';

const env = process.env;
const ring = parseKeyRing(env.CHAIN_RING!);
const store = await createStore({
  ring: { current: () => ring },
  poolSize: 2,
  ...(env.CHAIN_DATABASE_URL ? { databaseUrl: env.CHAIN_DATABASE_URL, pgSchema: env.CHAIN_PG_SCHEMA } : { dataDir: env.CHAIN_DATA_DIR }),
});
process.stdout.write('ready\n');
const lines = createInterface({ input: process.stdin });
for await (const line of lines) if (line === 'go') break;
const { chain, created } = await loadChainKey({ vault: store.vault, db: store.db, dialect: store.dialect });
const fingerprint = createHash('sha256').update(chain.key.export()).digest('hex');
process.stdout.write(`${JSON.stringify({ created, fingerprint, fromSeq: chain.fromSeq, afterHash: chain.afterHash })}\n`);
await store.close();
