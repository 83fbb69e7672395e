import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectionsCommand } from '../../src/cli/connections.ts';
import { connectCommand } from '../../src/cli/connect.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { baseUrlOf, cliRunner } from '../helpers/cli.ts';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';

// `warrant connections list|show|refresh|revoke` and `warrant connect` against a running Warrant
// and the sandbox IdP: tables (cut and coloured only on a terminal), --json as the API answers,
// errors as one line with exit 1, and `connect` waiting until the owner completes the real flow.

describe('warrant connections and warrant connect (CLI against a running server)', () => {
  let env: LifecycleEnv;
  const base = () => baseUrlOf(env);
  const connections = cliRunner(connectionsCommand, base);
  const connect = cliRunner(connectCommand, base);
  const api = async (path: string) => {
    const res = await fetch(`${base()}${path}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    return res.json();
  };

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 600 } });
  });
  after(async () => {
    await env?.cleanup();
  });

  /** The browser's part of a connect session: open the start link, consent at the sandbox, come back. */
  async function completeInBrowser(startUrl: string, deny = false) {
    const opened = await env.warrant.connect.openLink(startUrl);
    const params = Object.fromEntries(new URL(opened.location).searchParams);
    const redirect = deny
      ? `${params.redirect_uri}?${new URLSearchParams({ error: 'access_denied', state: params.state!, iss: new URL(opened.location).origin })}`
      : await env.sandbox.authorize(params as never);
    const back = new URL(redirect);
    return env.warrant.connect.handleCallback(back.searchParams, opened.cookieHeader, back.pathname);
  }

  test('list, show and refresh: aligned tables, filters, --json is the API’s answer', { timeout: 60_000 }, async () => {
    const first = await env.connect('ann@example.com', ['items:read']);
    const second = await env.connect('bob@example.com');

    const listed = await connections(['connections', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    const lines = listed.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^ID\s+PROVIDER\s+OWNER\s+STATUS\s+EXPIRES\s+LAST REFRESH$/);
    assert.match(listed.stdout, new RegExp(`^${first}\\s+sandbox\\s+ann@example\\.com\\s+active\\s+in \\d+m\\s+`, 'm'));
    assert.match(listed.stdout, new RegExp(`^${second}\\s+sandbox\\s+bob@example\\.com\\s+active\\s+`, 'm'));
    // Columns line up: every row's STATUS starts where the header's does.
    const at = lines[0]!.indexOf('STATUS');
    for (const l of lines.slice(1)) assert.equal(l.slice(at, at + 6), 'active', l);
    assert.ok(!listed.stdout.includes('\u001b['), 'no colour when stdout is not a terminal');

    const owned = await connections(['connections', 'list', '--owner', 'bob@example.com', '--status', 'active']);
    assert.ok(owned.stdout.includes(second) && !owned.stdout.includes(first), owned.stdout);
    const none = await connections(['connections', 'list', '--provider', 'nope']);
    assert.equal(none.stdout, 'no connections\n');

    const json = await connections(['connections', 'list', '--json']);
    assert.deepEqual(JSON.parse(json.stdout), await api('/v1/connections'));

    const shown = await connections(['connections', 'show', first]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`^connection:\\s+${first}$`, 'm'));
    assert.match(shown.stdout, /^provider:\s+sandbox \(production\)$/m);
    assert.match(shown.stdout, /^status:\s+active$/m);
    assert.match(shown.stdout, /^scopes:\s+offline_access items:read$/m);
    assert.match(shown.stdout, /^expires:\s+\d{4}-\d\d-\d\dT.*Z \(in \d+m\)$/m);
    assert.deepEqual(JSON.parse((await connections(['connections', 'show', first, '--json'])).stdout), await api(`/v1/connections/${first}`));

    const refreshed = await connections(['connections', 'refresh', first]);
    assert.equal(refreshed.code, 0, refreshed.stderr);
    assert.match(refreshed.stdout, new RegExp(`^refreshed: ${first}, token valid until \\d{4}-.*\\(in \\d+m\\)$`, 'm'));
  });

  test('tags: connect sets them, list filters on them (end user, organization, labels) and shows them', { timeout: 60_000 }, async () => {
    let started!: (line: string) => void;
    const firstLine = new Promise<string>((r) => (started = r));
    const running = connect(
      ['connect', 'sandbox', '--owner', 'tag@example.com', '--scopes', 'items:read', '--end-user', 'user_42', '--organization', 'org_7', '--label', 'plan=pro', '--label', 'region=eu', '--json', '--poll-interval', '0.2'],
      { onStdout: (t) => started(t.split('\n')[0]!) },
    );
    await completeInBrowser(JSON.parse(await firstLine).authorize_url);
    const r = await running;
    assert.equal(r.code, 0, r.stderr);
    const tagged = JSON.parse(r.stdout.trimEnd().split('\n')[1]!).connection_id as string;
    const plain = await env.connect('untagged@example.com');

    const list = (...args: string[]) => connections(['connections', 'list', ...args]);
    for (const filter of [['--end-user', 'user_42'], ['--organization', 'org_7'], ['--label', 'plan=pro'], ['--label', 'region'], ['--label', 'plan=pro', '--label', 'region=eu']]) {
      const out = await list(...filter);
      assert.equal(out.code, 0, out.stderr);
      assert.ok(out.stdout.includes(tagged) && !out.stdout.includes(plain), `${filter.join(' ')}: ${out.stdout}`);
    }
    assert.equal((await list('--label', 'plan=free')).stdout, 'no connections\n');
    const shown = await list('--end-user', 'user_42');
    assert.match(shown.stdout, /^ID\s+PROVIDER\s+OWNER\s+STATUS\s+EXPIRES\s+LAST REFRESH\s+TAGS$/m);
    assert.match(shown.stdout, new RegExp(`^${tagged}\\s.*\\suser=user_42 org=org_7 plan=pro region=eu$`, 'm'));
    const bad = await list('--label', 'Bad Key');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^warrant: invalid_request: .*label/);
  });

  test('on a terminal: cut to its width (ids kept whole), statuses coloured', { timeout: 30_000 }, async () => {
    const id = await env.connect('a-very-long-owner-name-that-will-not-fit@example.com');
    const r = await connections(['connections', 'list', '--owner', 'a-very-long-owner-name-that-will-not-fit@example.com'], { tty: { columns: 60 } });
    assert.equal(r.code, 0, r.stderr);
    const plain = r.stdout.replace(/\u001b\[\d+m/g, '');
    for (const line of plain.trimEnd().split('\n')) assert.ok(line.length <= 60, `${line.length}: ${line}`);
    assert.ok(plain.includes(id), 'the id is never cut');
    assert.match(plain, /…/);
    assert.ok(r.stdout.includes('\u001b[32mactive\u001b[0m'), r.stdout);
  });

  test('revoke prints the verification and deletes; then show is one line on stderr and exit 1', { timeout: 60_000 }, async () => {
    const id = await env.connect('cy@example.com');
    const revoked = await connections(['connections', 'revoke', id]);
    assert.equal(revoked.code, 0, `${revoked.stdout}${revoked.stderr}`);
    assert.match(revoked.stdout, /^revoked at IdP:\s+yes$/m);
    assert.match(revoked.stdout, /^verified:\s+yes \(introspection\)$/m);
    assert.match(revoked.stdout, /^deleted:\s+yes$/m);

    const gone = await connections(['connections', 'show', id]);
    assert.equal(gone.code, 1);
    assert.equal(gone.stdout, '');
    assert.match(gone.stderr, new RegExp(`^warrant: not_found: connection ${id} not found\\n$`));

    const anonymous = await connections(['connections', 'list'], { token: null });
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, /^warrant: no admin credential/);
    const wrong = await connections(['connections', 'list'], { token: 'not-the-token' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^warrant: admin_unauthenticated: /);
    assert.ok(!wrong.stderr.includes('not-the-token'));
  });

  test('connect prints the link, waits while the owner completes the flow, prints the connection and exits 0', { timeout: 60_000 }, async () => {
    let started!: (line: string) => void;
    const firstLine = new Promise<string>((r) => (started = r));
    let printed = '';
    const running = connect(['connect', 'sandbox', '--owner', 'dee@example.com', '--scopes', 'items:read', '--json', '--poll-interval', '0.2'], {
      onStdout: (t) => {
        printed += t;
        if (printed.includes('\n')) started(printed.split('\n')[0]!);
      },
    });
    const session = JSON.parse(await firstLine) as { id: string; connect_url: string; authorize_url: string };
    assert.match(session.connect_url, /^http:\/\/127\.0\.0\.1:\d+\//);
    // Still waiting: the session is pending until the browser comes back.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(printed.split('\n').filter(Boolean).length, 1);
    const outcome = await completeInBrowser(session.authorize_url);
    assert.ok(outcome.connection);

    const r = await running;
    assert.equal(r.code, 0, r.stderr);
    const [, last] = r.stdout.trimEnd().split('\n');
    const final = JSON.parse(last!);
    assert.equal(final.status, 'completed');
    assert.equal(final.connection_id, outcome.connection.id);
    assert.equal((await env.warrant.connections.get(final.connection_id)).owner, 'dee@example.com');
  });

  test('connect: the owner declines → exit 1 with why; the wait timing out → exit 1; --no-wait → exit 0 at once', { timeout: 60_000 }, async () => {
    let started!: (line: string) => void;
    const firstLine = new Promise<string>((r) => (started = r));
    const declined = connect(['connect', 'sandbox', '--owner', 'eve@example.com', '--scopes', 'items:read', '--json', '--poll-interval', '0.2'], {
      onStdout: (t) => started(t.split('\n')[0]!),
    });
    await completeInBrowser(JSON.parse(await firstLine).authorize_url, true);
    const r = await declined;
    assert.equal(r.code, 1);
    const final = JSON.parse(r.stdout.trimEnd().split('\n')[1]!);
    assert.equal(final.status, 'failed');
    assert.equal(final.error, 'access_denied');

    const timedOut = await connect(['connect', 'sandbox', '--owner', 'fay@example.com', '--scopes', 'items:read', '--wait-timeout', '0.5', '--poll-interval', '0.2']);
    assert.equal(timedOut.code, 1);
    assert.match(timedOut.stdout, /^Open this link in a browser to connect sandbox for fay@example\.com:\n\n {2}http:\/\/127\.0\.0\.1:\d+\/\S+\n\n/m);
    assert.match(timedOut.stderr, /^warrant: still pending after the wait timeout; session \S+ stays open until /m);

    const t0 = Date.now();
    const noWait = await connect(['connect', 'sandbox', '--owner', 'gus@example.com', '--scopes', 'items:read', '--no-wait']);
    assert.equal(noWait.code, 0, noWait.stderr);
    assert.match(noWait.stdout, /^session:\s+\S+$/m);
    assert.ok(Date.now() - t0 < 5_000);

    const unknown = await connect(['connect', 'no-such-provider', '--owner', 'gus@example.com', '--scopes', 'x']);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr.split('\n').filter(Boolean).length, 1, unknown.stderr);
  });
});
