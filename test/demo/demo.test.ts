import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { runWarrant } from '../helpers/process.ts';

// `warrant demo` as a user runs it without a terminal (`npm run demo` in CI): one process that
// must finish in time, behave as Warrant promises (failures only from the revocation, each one
// reauth_required, one alert), and leave nothing behind: no process, no open port, no files.

const BUDGET_MS = 90_000;

/** The value of one `name  value` row of the summary table. */
function row(out: string, name: string): string {
  const m = new RegExp(`^ {2}${name.replace(/[()]/g, '\\$&')} {2,}(.+)$`, 'm').exec(out);
  assert.ok(m, `the summary has a "${name}" row`);
  return m[1]!.trim();
}

/** Resolves true when something accepts a connection on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(2_000, () => (socket.destroy(), resolve(true)));
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** Child pids of `pid` right now (Linux /proc; empty elsewhere). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Whether `pid` still runs: a zombie (exited, not yet reaped) does not. */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
};

const commandOf = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim().slice(0, 200);
  } catch {
    return '?';
  }
};

/**
 * A child that is ending on its own when the demo exits (tsx's esbuild service reads EOF on its
 * stdin and quits) gets a moment; one that still runs after it was left behind.
 */
async function survivors(spawned: Map<number, string>, graceMs = 3_000): Promise<string[]> {
  const deadline = Date.now() + graceMs;
  for (;;) {
    const left = [...spawned].filter(([pid]) => alive(pid));
    if (left.length === 0 || Date.now() > deadline) return left.map(([pid, cmd]) => `${pid} ${cmd}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('warrant demo --no-wait: under 90 s, failures only from the revocation and all reauth_required, one alert, nothing left running', { timeout: BUDGET_MS + 30_000 }, async () => {
  const started = Date.now();
  const demo = runWarrant(['demo', '--no-wait'], {});
  // Anything the demo starts in a process of its own must be gone when it ends.
  const spawned = new Map<number, string>();
  const watch = setInterval(() => childrenOf(demo.child.pid!).forEach((p) => spawned.has(p) || spawned.set(p, commandOf(p))), 250);
  const deadline = setTimeout(() => demo.child.kill('SIGKILL'), BUDGET_MS + 10_000);
  const code = await demo.exit();
  clearInterval(watch);
  clearTimeout(deadline);
  const elapsed = Date.now() - started;
  const out = demo.stdout();
  try {
    await checkRun(code, elapsed, out, demo.stderr(), spawned);
  } catch (err) {
    // What the demo printed is what explains a failure.
    (err as Error).message += `\n--- demo stdout ---\n${out}\n--- demo stderr ---\n${demo.stderr()}`;
    throw err;
  }
});

async function checkRun(code: number | null, elapsed: number, out: string, stderr: string, spawned: Map<number, string>): Promise<void> {
  assert.equal(code, 0, 'exit code');
  assert.ok(elapsed < BUDGET_MS, `took ${elapsed} ms`);

  assert.equal(row(out, 'calls'), '1000');
  const failed = Number(row(out, 'failed'));
  assert.ok(failed > 0, 'the revocation made calls fail');
  assert.equal(row(out, 'failures by code'), `reauth_required ${failed}`, 'every failure is reauth_required');
  assert.equal(row(out, 'failures before the revocation'), '0');
  assert.equal(Number(row(out, 'ok')) + failed, 1000);
  assert.match(row(out, 'first failure'), /^call #\d+, \d+\.\d+ s after the revocation$/);
  assert.equal(row(out, 'alerts'), '1 connection.reauth_required');
  assert.match(row(out, 'refreshes'), /^\d+ at the IdP \(.*503 ×\d+/, 'the outage refused refreshes');
  assert.doesNotMatch(out, /^ {2}FAIL/m);
  assert.match(out, /^Expectations held/m);
  assert.match(out, /^Dashboard: http:\/\/127\.0\.0\.1:\d+\/ui$/m);

  // Nothing left: the ports it listened on are closed, its store is gone, no process of its own lives on.
  const ports = /^ {3}ports (\d+) (\d+) (\d+) on 127\.0\.0\.1/m.exec(out);
  assert.ok(ports, 'the demo prints its ports');
  for (const port of ports.slice(1).map(Number)) assert.equal(await listening(port), false, `port ${port} is closed`);
  const dir = /\(SQLite store in (\S+)\)/.exec(out)?.[1];
  assert.ok(dir, 'the demo prints its store directory');
  assert.equal(existsSync(dir), false, `${dir} was removed`);
  assert.deepEqual(await survivors(spawned), [], 'every process started by the demo is gone');
  // No secret but the dashboard's one-time sign-in key: no agent key, no bearer header.
  assert.doesNotMatch(out + stderr, /wrt_|Bearer /);
  assert.equal(out.match(/wak_/g)?.length, 1, 'the sign-in key is shown once');
}
