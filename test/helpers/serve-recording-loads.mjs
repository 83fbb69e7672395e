// `warrant serve`, with every module it resolves recorded in $LOAD_LOG (see load-recorder.mjs).
// Plain JavaScript: tsx is registered here, before the recorder, so the recorder sees every URL.
import { register } from 'node:module';
import { createRequire } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

registerTsx();
register(new URL('./load-recorder.mjs', import.meta.url), { data: { file: process.env.LOAD_LOG } });
const { main } = await import('../../src/cli/main.ts');
await main([process.argv[0], 'warrant', 'serve']);
// CommonJS loads do not pass the resolve hook on Node 20: list them from the require cache.
const cjs = Object.keys(createRequire(import.meta.url).cache);
process.stderr.write(`CJS_LOADED ${JSON.stringify(cjs)}\n`);
