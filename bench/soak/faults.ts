// The fault schedule of one pass, spread over its duration, one fault at a time so each failure
// can be attributed to the fault that explains it (or to none: a bug).
import type { SoakDb } from './db.ts';
import type { World } from './load.ts';
import { sleep, type RedisProc, type SandboxProc } from './procs.ts';
import type { AdminClient } from './seed.ts';

export type FaultKind = 'kill' | 'idp_outage' | 'pg_terminate' | 'redis_down' | 'revocations';

export interface FaultWindow {
  kind: FaultKind;
  /** Epoch ms. */
  start: number;
  end: number;
  /** After `end`, the failures the fault explains are still expected for this long. */
  graceMs: number;
  /** The instance a kill hit. */
  instance?: number;
  note: string;
}

/** When each deliberate revocation took effect (epoch ms), by connection or agent index. */
export interface Revocations {
  idp: Map<number, number>;
  deleted: Map<number, number>;
  /** When the DELETE was sent… */
  agents: Map<number, number>;
  /** …and when it was answered. */
  agentsDone: Map<number, number>;
}

export const emptyRevocations = (): Revocations => ({ idp: new Map(), deleted: new Map(), agents: new Map(), agentsDone: new Map() });

export interface FaultContext {
  world: World;
  sandbox: SandboxProc;
  redis?: RedisProc;
  db: SoakDb;
  /** application_name prefix of every Warrant session. */
  appPrefix: string;
  admin: AdminClient;
  revoked: Revocations;
  windows: FaultWindow[];
  /** Which instance the kill hits. */
  killIndex: number;
  /** Work a fault left running (a restart); awaited before the pass ends. */
  background: Promise<unknown>[];
  /** Called when a restarted instance is ready (its warm-up RSS is taken later). */
  onRestart(i: number): void;
  log(line: string): void;
}

/** Recovery the issue asks for after an IdP outage and a store fault: 2xx again within 5 s. */
export const recoveryGraceMs = 5_000;

export interface Step {
  atMs: number;
  kind: FaultKind;
}

/** Offsets into a pass of `durationMs`; the outage lasts 20 s (less in passes under a minute). */
export function plan(durationMs: number, withRedis: boolean): Step[] {
  const steps: Step[] = [
    { atMs: 0.12 * durationMs, kind: 'kill' },
    { atMs: 0.25 * durationMs, kind: 'idp_outage' },
    { atMs: 0.76 * durationMs, kind: 'pg_terminate' },
    { atMs: 0.88 * durationMs, kind: 'revocations' },
  ];
  if (withRedis) steps.push({ atMs: 0.66 * durationMs, kind: 'redis_down' });
  return steps.sort((a, b) => a.atMs - b.atMs);
}

export const outageMs = (durationMs: number) => Math.min(20_000, Math.floor(durationMs / 3));
const redisDownMs = (durationMs: number) => Math.min(10_000, Math.max(5_000, Math.floor(durationMs * 0.03)));

/** SIGKILL, then a restart in the background (start-up can take a while on a loaded machine). */
async function kill(ctx: FaultContext): Promise<void> {
  const i = ctx.killIndex;
  const inst = ctx.world.instances[i]!;
  ctx.world.up[i] = false;
  // The one window no client can close (docs/token-lifecycle.md, "Crashes"): the IdP rotates a
  // refresh token and the process dies before committing the answer; a strictly rotating IdP (the
  // sandbox) then kills the grant. The kill is made to land while the IdP *holds* token requests,
  // as a crash mid-refresh usually does (the answer is the slow part): the sandbox drops a held
  // request whose client is gone, so nothing was rotated, and the grant must come through.
  // New token requests are held 3 s; the 1.2 s wait lets the IdP finish (and Warrant commit) the
  // ones it had already taken, so only held requests are in flight when the process dies.
  await ctx.sandbox.control('PUT', '/faults', { tokenEndpoint: { delayMs: 3_000 } });
  await new Promise((r) => setTimeout(r, 1_200));
  const start = Date.now();
  inst.stopping = true;
  inst.proc!.child.kill('SIGKILL');
  await inst.proc!.exited;
  inst.stopping = false;
  await ctx.sandbox.control('DELETE', '/faults');
  const window: FaultWindow = { kind: 'kill', start, end: Infinity, graceMs: 1_000, instance: i, note: `SIGKILL instance ${i}, restarting` };
  ctx.windows.push(window);
  ctx.background.push(
    inst.start().then(() => {
      window.end = Date.now();
      window.note = `SIGKILL instance ${i}, restarted, ready after ${((window.end - start) / 1000).toFixed(1)} s`;
      ctx.world.up[i] = true;
      ctx.onRestart(i);
    }),
  );
}

async function idpOutage(ctx: FaultContext, ms: number): Promise<void> {
  const start = Date.now();
  await ctx.sandbox.control('PUT', '/faults', { tokenEndpoint: { status: 503 } });
  await sleep(ms);
  await ctx.sandbox.control('DELETE', '/faults');
  ctx.windows.push({ kind: 'idp_outage', start, end: Date.now(), graceMs: recoveryGraceMs, note: `token endpoint answers 503 for ${ms / 1000} s` });
}

async function pgTerminate(ctx: FaultContext): Promise<void> {
  const start = Date.now();
  const n = await ctx.db.terminate(ctx.appPrefix);
  ctx.windows.push({ kind: 'pg_terminate', start, end: Date.now(), graceMs: recoveryGraceMs, note: `pg_terminate_backend on ${n} Warrant sessions` });
}

async function redisDown(ctx: FaultContext, ms: number): Promise<void> {
  const start = Date.now();
  await ctx.redis!.kill();
  await sleep(ms);
  await ctx.redis!.start();
  ctx.windows.push({ kind: 'redis_down', start, end: Date.now(), graceMs: recoveryGraceMs, note: `Redis killed, started again after ${ms / 1000} s` });
}

/** Kills a few grants at the IdP (a password reset), deletes a few connections, revokes a few agents. */
async function revocations(ctx: FaultContext): Promise<void> {
  const { world, revoked } = ctx;
  const start = Date.now();
  const taken = (c: number) => revoked.idp.has(c) || revoked.deleted.has(c);
  const live = world.agents.filter((a) => !revoked.agents.has(a.index));
  // An instance that is up (after a crash all may be restarting).
  const origin = async () => {
    for (let waited = 0; !world.up.some(Boolean) && waited < 60_000; waited += 500) await sleep(500);
    const i = world.up.findIndex(Boolean);
    if (i < 0) throw new Error('no instance up');
    return world.instances[i]!.origin;
  };
  let idp = 0;
  for (const agent of live.filter((a) => a.tokenExport)) {
    if (idp === 4) break;
    const conn = agent.conns.find((c) => !taken(c));
    if (conn === undefined) continue;
    // The sandbox revokes a grant by any of its tokens: take the current one through the agent API.
    const res = await fetch(`${await origin()}/v1/connections/${world.connectionIds[conn]}/token`, { headers: { authorization: `Bearer ${agent.key}` } });
    const body = (await res.json()) as { access_token?: string };
    if (!body.access_token) continue;
    revoked.idp.set(conn, Date.now());
    await ctx.sandbox.control('POST', '/revoke-grant', { token: body.access_token });
    idp++;
  }
  let deleted = 0;
  for (const agent of [...live].reverse()) {
    if (deleted === 2) break;
    const conn = agent.conns.find((c) => !taken(c));
    if (conn === undefined) continue;
    revoked.deleted.set(conn, Date.now());
    await ctx.admin.ok(await origin(), 'DELETE', `/v1/connections/${world.connectionIds[conn]}`);
    deleted++;
  }
  const agents = live.filter((a) => a.conns.every((c) => !taken(c))).slice(10, 13);
  for (const agent of agents) {
    revoked.agents.set(agent.index, Date.now());
    await ctx.admin.ok(await origin(), 'DELETE', `/v1/agents/${agent.id}`);
    revoked.agentsDone.set(agent.index, Date.now());
  }
  ctx.windows.push({
    kind: 'revocations',
    start,
    end: Date.now(),
    graceMs: 0,
    note: `${idp} grants revoked at the IdP, ${deleted} connections deleted, ${agents.length} agents revoked`,
  });
}

/** Runs the steps at their offsets from `passStart`; a fault that fails is logged and the run goes on. */
export async function runPlan(steps: Step[], passStart: number, durationMs: number, ctx: FaultContext): Promise<void> {
  for (const step of steps) {
    const wait = passStart + step.atMs - Date.now();
    if (wait > 0) await sleep(wait);
    ctx.log(`fault: ${step.kind} at ${((Date.now() - passStart) / 1000).toFixed(1)} s`);
    try {
      if (step.kind === 'kill') await kill(ctx);
      else if (step.kind === 'idp_outage') await idpOutage(ctx, outageMs(durationMs));
      else if (step.kind === 'pg_terminate') await pgTerminate(ctx);
      else if (step.kind === 'redis_down') await redisDown(ctx, redisDownMs(durationMs));
      else await revocations(ctx);
    } catch (err) {
      ctx.log(`fault ${step.kind} could not be applied: ${(err as Error).message}`);
      ctx.windows.push({ kind: step.kind, start: Date.now(), end: Date.now(), graceMs: 0, note: `NOT APPLIED: ${(err as Error).message}` });
    }
  }
}
