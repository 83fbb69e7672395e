// Companion to bench/proxy.ts: the cost of each stage of a proxied call on its own, measured
// in a loop on a warmed-up Warrant (same setup as the bench: sandbox, embedded SQLite, one agent).
// Not a load test: it says where the time of (c) − (b) can go, not how the stages overlap.
//
//   node --import tsx bench/proxy-stages.ts
//
// The last block is an experiment, not Warrant's code: audit appends as one multi-row INSERT per
// batch, with the same hash chain (audit.verify() must still pass at the end), to size the
// suggested change in src/events/audit.ts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { startSandbox } from '../src/sandbox/index.ts';
import { loadConfig } from '../src/config/index.ts';
import { createWarrant } from '../src/warrant.ts';
import { createLogger } from '../src/http/logger.ts';
import { resolveTarget } from '../src/proxy/target.ts';
import { findGrantedScope } from '../src/proxy/policy.ts';
import { agentResponseHeaders, upstreamRequestHeaders } from '../src/proxy/headers.ts';
import { needsBody, classifyUpstream } from '../src/proxy/detect.ts';

const sandbox = await startSandbox({ accessTokenTtl: 3600 });
const dir = mkdtempSync(join(tmpdir(), 'warrant-bench-stages-'));
const pf = join(dir, 's.yaml');
writeFileSync(pf, stringify(sandbox.providerDefinition('sandbox')));
const admin = `bench-admin-${randomBytes(8).toString('hex')}`;
const w = await createWarrant(loadConfig({ WARRANT_DATA_DIR: dir, WARRANT_ADMIN_TOKEN: admin, WARRANT_MASTER_KEY: `k1:${randomBytes(32).toString('base64')}`, WARRANT_PORT: '0', WARRANT_PROVIDERS: pf, WARRANT_LOG_LEVEL: 'error' }), { logger: createLogger('error'), notice: () => {}, scheduler: false });
await w.listen();
const s = await w.connect.createSession({ provider: 'sandbox', owner: 'b@x', scopes: ['items:read'] });
const opened = await w.connect.openLink(s.authorize_url);
const red = await sandbox.authorize(Object.fromEntries(new URL(opened.location).searchParams) as never);
const conn = (await w.connect.handleCallback(new URL(red).searchParams, opened.cookieHeader)).connection!.id;
const res = await w.app.inject({ method: 'POST', url: '/v1/agents', headers: { authorization: `Bearer ${admin}` }, payload: { name: 'b', owner: 'b@x', grants: [{ connection: conn, scopes: ['items:read'] }] } });
const key = res.json().api_key as string;
const provider = w.catalog.get('sandbox')!;

async function time(name: string, n: number, fn: () => unknown) {
  for (let i = 0; i < Math.min(n, 2000); i++) await fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  console.log(`${name.padEnd(60)} ${((performance.now() - t0) * 1000 / n).toFixed(2).padStart(8)} µs`);
}
function timeSync(name: string, n: number, fn: () => unknown) {
  for (let i = 0; i < Math.min(n, 2000); i++) fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn();
  console.log(`${name.padEnd(60)} ${((performance.now() - t0) * 1000 / n).toFixed(2).padStart(8)} µs`);
}
const base = sandbox.apiBaseUrl;
const incoming = { host: '127.0.0.1:1', authorization: `Bearer ${key}`, connection: 'keep-alive' } as Record<string, string>;
await time('agents.authenticate (cache hit)', 50000, () => w.agents.authenticate(key));
await time('tokens.getFreshToken (cache hit)', 50000, () => w.tokens.getFreshToken(conn, { actor: 'agent:x' }));
timeSync('resolveTarget(base, "/items", "")', 50000, () => resolveTarget(base, '/items', ''));
timeSync('new URL(baseUrl).pathname.replace (attempt)', 50000, () => new URL(base).pathname.replace(/\/+$/, ''));
timeSync('findGrantedScope', 50000, () => findGrantedScope(provider.scopes, ['items:read'], 'GET', '/items'));
timeSync('upstreamRequestHeaders', 50000, () => upstreamRequestHeaders(incoming));
const up = { 'content-type': 'application/json; charset=utf-8', 'content-length': '300', 'cache-control': 'no-store', date: 'x', connection: 'keep-alive', 'keep-alive': 'timeout=5' };
timeSync('agentResponseHeaders', 50000, () => agentResponseHeaders(up));
timeSync('needsBody(provider)', 50000, () => needsBody(provider));
const text = JSON.stringify({ items: [{ id: 'x', name: 'first item' }, { id: 'y', name: 'second' }] });
timeSync('JSON.parse + classifyUpstream (200 json)', 50000, () => classifyUpstream(provider, { status: 200, headers: up, json: JSON.parse(text), text }));
timeSync('AbortSignal.timeout(30s)', 50000, () => AbortSignal.timeout(30_000));
timeSync('new URL(target) per attempt', 50000, () => new URL(base + '/items'));
const entry = () => ({ type: 'proxy.call', actor: 'agent:agt_x', subject: `connection:${conn}`, data: { method: 'GET', path: '/items', scope: 'items:read', status: 200, code: null, retries: 0, refreshed: false, duration_ms: 0.7, request_id: 'req_0123456789abcdefghij' } });
for (const n of [1, 10, 30, 100, 500]) {
  const rounds = Math.max(5, Math.floor(3000 / n));
  await w.audit.append(Array.from({ length: n }, entry));
  const t0 = performance.now();
  let maxBlock = 0;
  for (let i = 0; i < rounds; i++) {
    let ticked = false;
    setImmediate(() => (ticked = true));
    const b0 = performance.now();
    await w.audit.append(Array.from({ length: n }, entry));
    if (!ticked) maxBlock = Math.max(maxBlock, performance.now() - b0);
  }
  const per = ((performance.now() - t0) * 1000) / (rounds * n);
  console.log(`audit.append batch of ${String(n).padEnd(4)}: ${per.toFixed(1).padStart(7)} µs/entry; event loop blocked for the whole batch: ${maxBlock > 0 ? `yes, up to ${maxBlock.toFixed(2)} ms` : 'no'}`);
}

// The suggested audit.ts change, as an experiment: one multi-row INSERT per batch, and the row hash
// computed from the canonical data string (no JSON.parse round trip). verify() must still pass.
const { createHash, randomUUID } = await import('node:crypto');
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}
async function appendFast(inputs: ReturnType<typeof entry>[]) {
  return w.store.db.transaction().execute(async (trx) => {
    const last = await trx.selectFrom('audit_events').select('hash').orderBy('seq', 'desc').limit(1).executeTakeFirst();
    let prev = last?.hash ?? '0'.repeat(64);
    const rows = inputs.map((input) => {
      const data = canonical(input.data ?? {});
      const row = { id: `evt_${randomUUID().replaceAll('-', '')}`, at: Date.now(), type: input.type, actor: input.actor, subject: input.subject ?? null, data };
      // canonical({...row, data: JSON.parse(data)}) with the keys in sorted order, data spliced in as is
      const text = `{"actor":${JSON.stringify(row.actor)},"at":${JSON.stringify(row.at)},"data":${data},"id":${JSON.stringify(row.id)},"subject":${JSON.stringify(row.subject)},"type":${JSON.stringify(row.type)}}`;
      const hash = createHash('sha256').update(prev).update('\n').update(text).digest('hex');
      const out = { ...row, prev_hash: prev, hash };
      prev = hash;
      return out;
    });
    return trx.insertInto('audit_events').values(rows).returning('seq').execute();
  });
}
for (const n of [1, 10, 30, 100, 500]) {
  const rounds = Math.max(5, Math.floor(3000 / n));
  await appendFast(Array.from({ length: n }, entry));
  const t0 = performance.now();
  let maxBlock = 0;
  for (let i = 0; i < rounds; i++) {
    const b0 = performance.now();
    await appendFast(Array.from({ length: n }, entry));
    maxBlock = Math.max(maxBlock, performance.now() - b0);
  }
  console.log(`multi-row insert, batch of ${String(n).padEnd(4)}: ${(((performance.now() - t0) * 1000) / (rounds * n)).toFixed(1).padStart(7)} µs/entry; longest batch ${maxBlock.toFixed(2)} ms`);
}
console.log('audit chain after both kinds of append:', JSON.stringify(await w.audit.verify()));
await w.close();
await sandbox.close();
rmSync(dir, { recursive: true, force: true });
