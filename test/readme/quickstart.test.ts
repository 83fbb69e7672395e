import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { sectionCommands } from './readme-commands.ts';

// The README's quickstart, run command by command as a new user would on a fresh clone: the
// commands are read from README.md (so a changed README runs its new commands), run with bash in
// a directory that looks like a clone, with the connect link opened in headless Chromium. Fails
// when the README and the product disagree: a command that does not exit 0, or an outcome other
// than the one the README's prose promises.

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = process.env.WARRANT_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = join(REPO, 'test-artifacts', 'quickstart');
// The ports the quickstart relies on: Warrant's and the sandbox's defaults (curl calls localhost:7070).
const WARRANT_PORT = 7070;
const SANDBOX_PORT = 7171;
const COMMAND_TIMEOUT_MS = 60_000;

const skip = !existsSync(CHROMIUM) && !process.env.CI ? `${CHROMIUM} not found: install Debian's chromium package to run the quickstart test` : false;
if (skip) console.log(`# NOTE: quickstart test skipped: ${skip}`);

// What a clone does not hold: git's own data, ignored output, and the state the quickstart creates.
const NOT_IN_A_CLONE = new Set(['.git', '.warrant', 'sandbox.yaml', 'test-artifacts', 'coverage', 'dist', '.scratch', '.env']);

/** Keys and tokens never reach a failure message or a log line. */
const redact = (s: string) => s.replace(/\b(wat|wrt|wak)_[A-Za-z0-9_-]+/g, '$1_[redacted]');
const tail = (s: string) => redact(s.length > 3000 ? `…${s.slice(-3000)}` : s);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Proc {
  command: string;
  pgid: number;
  out: string;
  err: string;
  code: number | null;
  exited: Promise<number | null>;
}

const describe = (p: Proc) => `$ ${p.command}\nexit: ${p.code ?? 'running'}\nstdout:\n${tail(p.out)}\nstderr:\n${tail(p.err)}`;

/** Every process of a group that is not a zombie (a zombie holds no port and does no work). */
function liveMembers(pgid: number): number[] {
  if (!existsSync('/proc/self/stat')) {
    try {
      process.kill(-pgid, 0);
      return [pgid];
    } catch {
      return [];
    }
  }
  const live: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z') live.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return live;
}

/** Polls `probe` until it answers something other than undefined, for at most `ms`; a process that exits meanwhile fails it. */
async function until<T>(what: string, ms: number, probe: () => T | undefined | Promise<T | undefined>, proc?: Proc): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (proc && proc.code !== null) throw new Error(`exited before ${what}\n${describe(proc)}`);
    if (Date.now() > deadline) throw new Error(`no ${what} after ${ms / 1000} s${proc ? `\n${describe(proc)}` : ''}`);
    await sleep(100);
  }
}

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

/**
 * Whether a process of the group listens on the port (not another program that took it
 * meanwhile: the machine may run other things). Without /proc: whether anything listens.
 */
async function groupListens(pgid: number, port: number): Promise<boolean> {
  if (!existsSync('/proc/net/tcp')) return portOpen(port);
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT, st 0A is LISTEN, the inode is the 10th column.
      if (cols[1]?.endsWith(`:${hexPort}`) && cols[3] === '0A') inodes.add(`socket:[${cols[9]}]`);
    }
  }
  if (!inodes.size) return false;
  for (const pid of liveMembers(pgid)) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        if (inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return true;
      }
    } catch {
      // gone meanwhile
    }
  }
  return false;
}

async function assertPortFree(port: number): Promise<void> {
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
  } catch (err) {
    assert.fail(`port ${port} is taken (${(err as NodeJS.ErrnoException).code}): the README's quickstart uses the fixed ports ${WARRANT_PORT} and ${SANDBOX_PORT}; stop what listens there and run the test again`);
  }
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A directory that looks like a fresh clone after `npm install`: the repository's entries linked, node_modules included. */
function freshClone(root: string): string {
  const dir = join(root, 'warrant');
  mkdirSync(dir);
  for (const name of readdirSync(REPO)) {
    if (NOT_IN_A_CLONE.has(name) || name.endsWith('.log')) continue;
    symlinkSync(join(REPO, name), join(dir, name));
  }
  return dir;
}

/** The environment of a new user's shell: none of this process's Warrant, npm-script or test settings. */
function userEnv(root: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(WARRANT_|npm_|NODE_TEST|INIT_CWD$|DATABASE_URL$|REDIS_URL$)/.test(k)) continue;
    env[k] = v;
  }
  // An npm cache of its own: npx links the clone's `warrant` bin into it as on a first run, and
  // nothing is left in the user's ~/.npm pointing at a removed directory.
  env.npm_config_cache = join(root, 'npm-cache');
  env.npm_config_update_notifier = 'false';
  // curl reads this .curlrc: each response's status goes to stderr, the body to stdout as written.
  const curlHome = join(root, 'curl');
  mkdirSync(curlHome);
  writeFileSync(join(curlHome, '.curlrc'), 'write-out = "%{stderr}HTTP %{http_code}\\n"\n');
  env.CURL_HOME = curlHome;
  return env;
}

const isLongRunning = (c: string) => /\bnpm\s+(run\s+)?start\b/.test(c) || /\bwarrant\s+serve\b/.test(c) || /\bwarrant\s+sandbox(?!\s+(revoke|outage|expire-tokens|status)\b)/.test(c);
const proxyCall = (c: string) => /^curl\b/.test(c) && /\/v1\/proxy\//.test(c);

test('README quickstart: every command works as written on a fresh clone', { skip, timeout: 240_000 }, async (t: TestContext) => {
  const commands = sectionCommands(readFileSync(join(REPO, 'README.md'), 'utf8'), 'Quickstart');
  assert.ok(commands.length > 0, 'the Quickstart section has sh blocks');
  await assertPortFree(WARRANT_PORT);
  await assertPortFree(SANDBOX_PORT);

  const root = mkdtempSync(join(tmpdir(), 'warrant-quickstart-'));
  const cwd = freshClone(root);
  const env = userEnv(root);
  const procs: Proc[] = [];
  // Launched when the connect step starts; closed in teardown whatever happened.
  let launching: Promise<Browser> | undefined;
  const began = Date.now();
  const elapsed = () => `${((Date.now() - began) / 1000).toFixed(1)} s`;

  const start = (command: string): Proc => {
    // Its own process group: teardown ends the shell and everything it started.
    const child = spawn('bash', ['-c', command], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const p: Proc = { command, pgid: child.pid!, out: '', err: '', code: null, exited: undefined as never };
    child.stdout!.on('data', (d) => (p.out += d));
    child.stderr!.on('data', (d) => (p.err += d));
    p.exited = new Promise((resolve) => child.on('close', (code, signal) => resolve((p.code = code ?? (signal ? 128 : -1)))));
    procs.push(p);
    return p;
  };
  const finish = async (p: Proc) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, COMMAND_TIMEOUT_MS, 'timeout')));
    const outcome = await Promise.race([p.exited, timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') assert.fail(`still running after ${COMMAND_TIMEOUT_MS / 1000} s\n${describe(p)}`);
    assert.equal(p.code, 0, `exit code\n${describe(p)}`);
    return p;
  };

  // What the quickstart must have shown by the end; a README that loses a step fails here.
  const shown = new Set<string>();
  let revoked = false;
  let connection: string | undefined;
  let expiryAfterConnect: number | undefined;
  let completed = false;

  try {
    for (const command of commands) {
      t.diagnostic(`${elapsed()} $ ${command}`);

      if (/^npm\s+(install|ci)\b/.test(command)) continue; // node_modules is linked from the repository, where it is installed

      const exported = /^export\s+([A-Za-z_][A-Za-z0-9_]*)=(\S*)/.exec(command);
      if (exported) {
        const [, name, value] = exported as unknown as [string, string, string];
        if (value.includes('…')) {
          // The user copies a value printed earlier: the newest output that has one.
          const prefix = value.slice(0, value.indexOf('…'));
          const re = new RegExp(`${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[A-Za-z0-9_-]+`);
          env[name] = await until(`value for ${name} (${prefix}…) in the output of an earlier command`, 15_000, () => {
            for (const p of [...procs].reverse()) {
              const m = re.exec(p.out) ?? re.exec(p.err);
              if (m) return m[0];
            }
            return undefined;
          });
        } else {
          env[name] = (await finish(start(`${command}\nprintf %s "$${name}"`))).out;
        }
        continue;
      }

      if (isLongRunning(command)) {
        const p = start(command);
        const port = /\bwarrant\s+sandbox\b/.test(command) ? SANDBOX_PORT : WARRANT_PORT;
        await until(`listener of its own on port ${port}`, COMMAND_TIMEOUT_MS, async () => ((await groupListens(p.pgid, port)) ? true : undefined), p);
        // Output sent to a file (the sandbox's provider definition) is complete before the next command reads it.
        const file = /(?<![0-9&])>\s*([^\s;&|]+)/.exec(command)?.[1];
        if (file) await until(`content in ${file}`, 10_000, () => (existsSync(join(cwd, file)) && /^[^#\s]/m.test(readFileSync(join(cwd, file), 'utf8')) ? true : undefined), p);
        continue;
      }

      if (/\bwarrant\s+connect\b/.test(command)) {
        launching = chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
        launching.catch(() => undefined);
        const p = start(command);
        const link = await until('connect link in its output', COMMAND_TIMEOUT_MS, () => /https?:\/\/\S+\/connect\/\S+/.exec(p.out)?.[0], p);
        const browser = await launching;
        const page = await browser.newPage();
        page.setDefaultTimeout(15_000);
        // As a person: open the link, read, press Continue; approve at the sandbox if it asks.
        await page.goto(link);
        await page.getByRole('button', { name: /^Continue to / }).click();
        const approve = page.getByRole('button', { name: 'Approve' });
        void approve
          .waitFor({ timeout: 15_000 })
          .then(() => approve.click())
          .catch(() => undefined);
        await finish(p);
        mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: join(ARTIFACTS, 'connect-result.png'), fullPage: true }).catch(() => undefined);
        await browser.close();
        connection = /\bcon_[A-Za-z0-9_-]+/.exec(p.out)?.[0];
        assert.ok(connection, `warrant connect printed the connection id\n${describe(p)}`);
        // The expiry right after connect, for step 6 to compare with (read over the API, as an observer).
        const res = await fetch(`http://127.0.0.1:${WARRANT_PORT}/v1/connections/${connection}`, { headers: { authorization: `Bearer ${env.WARRANT_ADMIN_TOKEN ?? ''}` } });
        assert.equal(res.status, 200, `GET /v1/connections/${connection}`);
        const view = (await res.json()) as { expires_at: string | null; status: string };
        assert.equal(view.status, 'active');
        assert.ok(view.expires_at, 'a connection has an expiry right after connect');
        expiryAfterConnect = Date.parse(view.expires_at);
        shown.add('connect');
        continue;
      }

      const p = await finish(start(command));

      if (proxyCall(command)) {
        const status = Number(/HTTP (\d{3})/.exec(p.err)?.[1]);
        let body: { items?: unknown[]; code?: string; status?: number };
        try {
          body = JSON.parse(p.out) as typeof body;
        } catch {
          assert.fail(`a JSON body\n${describe(p)}`);
        }
        const method = /(?:-X|--request)\s+([A-Z]+)/.exec(command)?.[1] ?? (/\s(-d|--data\S*)\s/.test(command) ? 'POST' : 'GET');
        if (revoked) {
          assert.deepEqual([status, body.code], [424, 'reauth_required'], `after the revocation the agent gets 424 reauth_required\n${describe(p)}`);
          shown.add('424 reauth_required');
        } else if (method !== 'GET') {
          assert.deepEqual([status, body.code], [403, 'policy_denied'], `a write outside the grant is 403 policy_denied\n${describe(p)}`);
          shown.add('403 policy_denied');
        } else {
          assert.equal(status, 200, `the proxied read answers 200\n${describe(p)}`);
          assert.ok(Array.isArray(body.items) && body.items.length > 0, `the proxied read answers the items\n${describe(p)}`);
          shown.add('200 items');
        }
      } else if (/\bwarrant\s+connections\s+show\b/.test(command) && !revoked) {
        const expires = /^expires:?\s+(\S+)/m.exec(p.out)?.[1];
        const lastRefresh = /^last refresh:?\s+(\S+)/m.exec(p.out)?.[1];
        assert.ok(expires && expiryAfterConnect !== undefined, `connections show prints expires\n${describe(p)}`);
        assert.ok(Date.parse(expires) > expiryAfterConnect, `expires moved past ${new Date(expiryAfterConnect).toISOString()} (a refresh happened)\n${describe(p)}`);
        assert.ok(lastRefresh && lastRefresh !== '-', `connections show prints the last refresh\n${describe(p)}`);
        shown.add('expiry moved');
      } else if (/\bwarrant\s+audit\s+tail\b/.test(command)) {
        const type = /--(?:action|type)[\s=](\S+)/.exec(command)?.[1];
        if (type) {
          assert.ok(p.out.split('\n').some((l) => l.includes(type)), `audit tail prints at least one ${type} entry\n${describe(p)}`);
          if (type === 'connection.refreshed') shown.add('audit connection.refreshed');
        }
      } else if (/\bwarrant\s+sandbox\s+revoke\b/.test(command)) {
        revoked = true;
      } else if (/\bwarrant\s+status\b/.test(command) && revoked) {
        assert.ok(
          p.out.split('\n').some((l) => l.includes(connection!) && l.includes('reauth_required')),
          `warrant status shows ${connection} reauth_required\n${describe(p)}`,
        );
        shown.add('status reauth_required');
      }
    }

    for (const bg of procs.filter((p) => isLongRunning(p.command))) assert.equal(bg.code, null, `a background command stopped during the quickstart\n${describe(bg)}`);
    const expected = ['connect', '200 items', '403 policy_denied', 'expiry moved', 'audit connection.refreshed', '424 reauth_required', 'status reauth_required'];
    assert.deepEqual(
      expected.filter((s) => !shown.has(s)),
      [],
      'the quickstart shows each of these (a command the test recognises did each)',
    );
    t.diagnostic(`quickstart ran in ${elapsed()}`);
    completed = true;
  } finally {
    await (await launching?.catch(() => undefined))?.close().catch(() => undefined);
    // As Ctrl-C in each terminal, then a kill for whatever does not stop within 5 s.
    const groups = procs.map((p) => p.pgid);
    for (const g of groups) if (liveMembers(g).length) process.kill(-g, 'SIGTERM');
    const stopped = async (ms: number) => {
      const deadline = Date.now() + ms;
      while (groups.some((g) => liveMembers(g).length) && Date.now() < deadline) await sleep(100);
    };
    await stopped(5_000);
    for (const g of groups) {
      if (!liveMembers(g).length) continue;
      try {
        process.kill(-g, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    await stopped(5_000);
    rmSync(root, { recursive: true, force: true });
    const left = groups.flatMap(liveMembers);
    // After a failure, say so without hiding that failure.
    if (left.length && !completed) t.diagnostic(`processes left running: ${left.join(' ')}`);
    else assert.deepEqual(left, [], 'no process of the quickstart is left running');
  }
});

test('the quickstart is read as a reader copies it: sh blocks of the section, in order, continuations joined', () => {
  const md = [
    '## Quickstart',
    '```sh',
    '# a comment',
    'npm install',
    '',
    "curl -s localhost:7070/x \\",
    "  -H 'a: b'",
    '```',
    '```json',
    '{"not": "a command"}',
    '```',
    '```sh',
    'sleep 1',
    '```',
    '## Next',
    '```sh',
    'echo later',
    '```',
  ].join('\n');
  assert.deepEqual(sectionCommands(md, 'Quickstart'), ['npm install', "curl -s localhost:7070/x   -H 'a: b'", 'sleep 1']);
});
