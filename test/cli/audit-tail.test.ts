import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { auditCommand } from '../../src/cli/audit.ts';
import { tailAudit } from '../../src/cli/audit-tail.ts';
import { adminApiOf } from '../../src/cli/admin-api.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { baseUrlOf, cliRunner } from '../helpers/cli.ts';
import { eventually, startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { runWarrant } from '../helpers/process.ts';

// `warrant audit tail`: the newest N entries (oldest of them first), filters, --json lines; with
// --follow every entry written afterwards, once, in order, until Ctrl-C (exit 0).

describe('warrant audit tail (CLI against a running server)', () => {
  let env: LifecycleEnv;
  const base = () => baseUrlOf(env);
  const audit = cliRunner((io) => auditCommand(io), base);
  const append = (type: string, subject: string) => env.warrant.audit.append({ type, actor: 'test', subject, data: { n: subject } });

  before(async () => {
    env = await startLifecycle();
    for (let i = 1; i <= 5; i++) await append('test.step', `step:${i}`);
    await append('test.other', 'other:1');
  });
  after(async () => {
    await env?.cleanup();
  });

  test('the newest entries, oldest of them first; filters; --json is one API entry per line', { timeout: 30_000 }, async () => {
    const r = await audit(['audit', 'tail', '-n', '3', '--type', 'test.step']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 3);
    assert.deepEqual(lines.map((l) => /step:(\d)/.exec(l)?.[1]), ['3', '4', '5']);
    assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\S+Z {2}#\d+ {2}test\.step {2}test {2}step:3 {2}\{"n":"step:3"\}$/);

    const json = await audit(['audit', 'tail', '-n', '2', '--json']);
    const entries = json.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(entries.map((e) => e.subject), ['step:5', 'other:1']);
    const page = await fetch(`${base()}/v1/audit?order=desc&limit=2`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }).then((x) => x.json());
    assert.deepEqual(entries, page.entries.reverse());

    const bad = await audit(['audit', 'tail', '-n', '5000']);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'warrant: --lines: expected an integer from 1 to 1000\n');
  });

  test('--follow prints each new entry once, in order, until stopped', { timeout: 30_000 }, async () => {
    let out = '';
    const stop = new AbortController();
    const api = adminApiOf({ url: base(), token: ADMIN_TOKEN, timeout: 10 });
    const following = tailAudit(api, { lines: 1, follow: true, intervalMs: 100, json: true, filters: { type: 'test.live' } }, (t) => void (out += t), stop.signal);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(out, '', 'nothing matched before: nothing printed, and following starts at the head');
    for (let i = 1; i <= 3; i++) await append('test.live', `live:${i}`);
    await append('test.step', 'step:ignored');
    await append('test.live', 'live:4');
    await eventually(() => out.trimEnd().split('\n').length >= 4, 10_000);
    stop.abort();
    await following;
    assert.deepEqual(out.trimEnd().split('\n').map((l) => JSON.parse(l).subject), ['live:1', 'live:2', 'live:3', 'live:4']);
  });

  test('as a process: --follow stops on Ctrl-C with exit 0', { timeout: 30_000 }, async () => {
    const p = runWarrant(['audit', 'tail', '--follow', '-n', '1'], { WARRANT_URL: base(), WARRANT_ADMIN_TOKEN: ADMIN_TOKEN });
    await p.waitFor(/live:4/);
    await append('test.after', 'after:1');
    await p.waitFor(/after:1/, 10_000);
    assert.equal(await p.kill('SIGINT'), 0, p.stderr());
  });
});
