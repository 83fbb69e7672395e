import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestWarrant, ADMIN_TOKEN } from '../helpers/app.ts';
import { runWarrant } from '../helpers/process.ts';
import type { Warrant } from '../../src/warrant.ts';

// `warrant admin-keys create|list|revoke` against a running Warrant, through its admin API.

let warrant: Warrant;
let cleanup: () => Promise<void>;
let url: string;

before(async () => {
  ({ warrant, cleanup } = await startTestWarrant());
  url = await warrant.listen();
});
after(async () => cleanup?.());

/** Runs the CLI to its end, within a deadline. */
async function cli(args: string[], token = ADMIN_TOKEN) {
  const run = runWarrant(['admin-keys', ...args], { WARRANT_URL: url, WARRANT_ADMIN_TOKEN: token });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void run.kill('SIGKILL');
      reject(new Error(`warrant admin-keys ${args.join(' ')} did not end within 30 s`));
    }, 30_000);
  });
  try {
    const code = await Promise.race([run.exit(), deadline]);
    return { code, stdout: run.stdout(), stderr: run.stderr() };
  } finally {
    clearTimeout(timer);
  }
}

test('create prints the key alone on stdout, once; list shows it without the secret; revoke stops it', async () => {
  const created = await cli(['create', '--name', 'grafana', '--role', 'read', '--expires-in', '90d']);
  assert.equal(created.code, 0, created.stderr);
  const key = created.stdout.trim();
  assert.match(key, /^wak_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  assert.ok(!created.stderr.includes(key), 'shown once');
  const id = /Admin key (adk_[0-9a-f]{16}) \(read, expires (\S+)\)/.exec(created.stderr);
  assert.ok(id, created.stderr);
  assert.ok(Date.parse(id[2]!) > Date.now() + 89 * 86_400_000);
  assert.equal((await warrant.app.inject({ url: '/v1/agents', headers: { authorization: `Bearer ${key}` } })).statusCode, 200);

  const list = await cli(['list']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^ID\s+NAME\s+ROLE\s+STATUS/);
  assert.match(list.stdout, new RegExp(`${id[1]}\\s+grafana\\s+read\\s+active`));
  assert.ok(!list.stdout.includes(key.slice(-43)));
  const json = await cli(['list', '--json']);
  assert.equal(JSON.parse(json.stdout).admin_keys.find((k: { id: string }) => k.id === id[1]).role, 'read');

  // A read key cannot mint: one line on stderr naming the role needed, exit 1.
  const refused = await cli(['create', '--name', 'escalate', '--role', 'admin'], key);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /admin_forbidden: .*needs the admin role admin/);
  assert.equal(refused.stdout, '');

  const revoked = await cli(['revoke', id[1]!]);
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match(revoked.stdout, new RegExp(`${id[1]} revoked at \\d{4}-`));
  assert.equal((await warrant.app.inject({ url: '/v1/agents', headers: { authorization: `Bearer ${key}` } })).statusCode, 401);
});

test('bad options are refused before any call', async () => {
  const role = await cli(['create', '--name', 'x', '--role', 'owner']);
  assert.notEqual(role.code, 0);
  assert.match(role.stderr, /--role.*(read|choices)/);
  const duration = await cli(['create', '--name', 'x', '--role', 'read', '--expires-in', 'soon']);
  assert.notEqual(duration.code, 0);
  assert.match(duration.stderr, /3600s, 90m, 12h or 90d/);
});
