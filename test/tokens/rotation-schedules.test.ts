import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { storeKinds, skipWithoutPostgres } from '../helpers/stores.ts';
import { runWarrant } from '../helpers/process.ts';
import { providerSchema } from '../../src/providers/index.ts';

// Rotation schedules (issue 11 item 4). A refresh token, a JWT-bearer key or a client secret used
// for years is a credential nobody can say is still only where it should be. Warrant now rotates
// what it can on a schedule (WARRANT_ROTATE_*_DAYS) and proves the old credential dead; where it
// cannot, the owner or admin hears of the deadline before it passes.

const DAY_MS = 86_400_000;
const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** RFC 7662 at the sandbox, with its client's own credentials: the test's view, apart from Warrant's. */
async function introspect(env: LifecycleEnv, token: string): Promise<boolean> {
  const def = env.sandbox.providerDefinition();
  const res = await fetch(def.environments.production!.introspection_url!, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${def.client_id}:${def.client_secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, token_type_hint: 'refresh_token' }),
  });
  assert.equal(res.status, 200);
  return ((await res.json()) as { active: boolean }).active;
}

const refreshTokenOf = (env: LifecycleEnv, id: string) => env.warrant.store.vault.get({ scope: 'connection', ref: id, field: 'refresh_token' });
const eventsOf = async (env: LifecycleEnv, type: string, id: string) => (await env.warrant.audit.query({ type, subject: `connection:${id}` })).map((e) => e.data as Record<string, unknown>);

for (const kind of storeKinds) describe(`rotation schedules (${kind.name})`, { skip: kind.skip }, () => {
  let env: LifecycleEnv;
  let t = Date.now();

  before(async () => {
    env = await startLifecycle({
      store: kind.name,
      now: () => t,
      sandbox: { accessTokenTtl: 3600, rotateRefreshTokens: true, refreshTokenTtl: 365 * 86_400 },
      providers: [
        { extends: 'sandbox', id: 'fixed', refresh_token_rotation: false },
        { extends: 'sandbox', id: 'graced', refresh_token_grace_period: 60 },
        { extends: 'sandbox', id: 'secret-a' },
      ],
    });
  });
  after(async () => {
    await env?.cleanup();
  });

  test('a refresh token past 30 days at a rotating IdP: dry run changes nothing, the run rotates it once and proves the old one dead', async () => {
    const id = await env.connect('rot@example.com');
    const old = (await refreshTokenOf(env, id))!;
    let due = await env.warrant.app.inject({ method: 'GET', url: '/v1/rotations?due=true', headers });
    assert.equal(due.statusCode, 200, due.body);
    assert.ok(!due.json().rotations.some((r: { connection?: string }) => r.connection === id), 'a fresh token is not due');

    t += 31 * DAY_MS;
    due = await env.warrant.app.inject({ method: 'GET', url: '/v1/rotations?due=true', headers });
    const item = due.json().rotations.find((r: { connection?: string }) => r.connection === id);
    assert.equal(item?.state, 'due');
    assert.equal(item?.action, 'refresh');
    assert.equal(item?.kind, 'refresh_token');

    // warrant rotate --due --dry-run against the running instance: it says what it would do, nothing more.
    env.sandbox.resetStats();
    const address = env.warrant.app.server.address() as { port: number };
    const cli = runWarrant(['rotate', '--due', '--dry-run', '--json'], { WARRANT_URL: `http://127.0.0.1:${address.port}`, WARRANT_ADMIN_TOKEN: ADMIN_TOKEN });
    assert.equal(await cli.exit(), 0, cli.stderr());
    const dry = JSON.parse(cli.stdout()) as { dry_run: boolean; results: { connection?: string; outcome: string }[] };
    assert.equal(dry.dry_run, true);
    assert.equal(dry.results.find((r) => r.connection === id)?.outcome, 'planned');
    const human = runWarrant(['rotate', '--due', '--dry-run'], { WARRANT_URL: `http://127.0.0.1:${address.port}`, WARRANT_ADMIN_TOKEN: ADMIN_TOKEN });
    assert.equal(await human.exit(), 0, human.stderr());
    assert.match(human.stdout(), new RegExp(`planned +refresh_token +${id} \\(sandbox\\): would force a refresh`));
    assert.equal(env.sandbox.stats().refreshRequests, 0, 'a dry run calls no IdP');
    assert.equal(await refreshTokenOf(env, id), old);
    assert.equal((await eventsOf(env, 'rotation.completed', id)).length, 0);

    const run = await env.warrant.app.inject({ method: 'POST', url: '/v1/rotations/run?due=true', headers });
    assert.equal(run.statusCode, 200, run.body);
    const result = run.json().results.find((r: { connection?: string }) => r.connection === id);
    assert.deepEqual(
      { outcome: result.outcome, verified: result.verified, verification: result.verification },
      { outcome: 'completed', verified: true, verification: 'introspection' },
    );
    assert.equal(env.sandbox.stats().refreshRequests, 1);
    const now = (await refreshTokenOf(env, id))!;
    assert.notEqual(now, old);
    assert.equal(await introspect(env, old), false, 'the old refresh token is dead at the IdP');
    assert.equal(await introspect(env, now), true);
    const [done] = await eventsOf(env, 'rotation.completed', id);
    assert.deepEqual({ connection: done?.connection, kind: done?.kind, verified: done?.verified }, { connection: id, kind: 'refresh_token', verified: true });
    assert.ok(!JSON.stringify(await env.warrant.audit.query({ type: 'rotation.completed' })).includes(old), 'no token in the audit');
    const row = await env.warrant.connections.get(id);
    assert.equal(row.credential_issued_at, t);

    // Nothing due any more: a second pass does nothing at the IdP.
    const again = await env.warrant.app.inject({ method: 'POST', url: '/v1/rotations/run?due=true', headers });
    assert.equal(again.json().results.some((r: { connection?: string }) => r.connection === id), false, 'not due again');
    assert.equal(env.sandbox.stats().refreshRequests, 1);
    await env.warrant.connections.revoke(id, 'admin');
  });

  test("a provider with a grace period: the old refresh token is checked once the grace is over", async () => {
    const id = await env.connectTo('graced', 'grace@example.com');
    const old = (await refreshTokenOf(env, id))!;
    t += 31 * DAY_MS;
    const first = await env.warrant.rotations.run({ connection: id });
    assert.equal(first.results[0]?.outcome, 'verifying');
    assert.equal((await eventsOf(env, 'rotation.completed', id)).length, 0, 'not reported before it is verified');
    const early = await env.warrant.rotations.run();
    assert.ok(!early.results.some((r) => r.connection === id), 'not checked inside the grace period');
    t += 61_000;
    const later = await env.warrant.rotations.run();
    const r = later.results.find((x) => x.connection === id);
    assert.deepEqual({ outcome: r?.outcome, verified: r?.verified }, { outcome: 'completed', verified: true });
    assert.equal(await introspect(env, old), false);
    assert.equal(await env.warrant.store.vault.get({ scope: 'connection', ref: id, field: 'previous_refresh_token' }), undefined, 'the old token is not kept');
    await env.warrant.connections.revoke(id, 'admin');
  });

  test('a provider that cannot rotate: credential.expiring to the owner 14 and 2 days before the deadline, no IdP call', async () => {
    const id = await env.connectTo('fixed', 'fixed@example.com');
    env.sandbox.resetStats();
    t += 17 * DAY_MS;
    const listed = (await env.warrant.rotations.list({ due: true })).find((r) => r.connection === id);
    assert.deepEqual({ state: listed?.state, action: listed?.action }, { state: 'owner_action', action: 'notify' });
    const run = await env.warrant.rotations.run();
    assert.equal(run.notices_sent >= 1, true, `notices sent: ${run.notices_sent}`);
    let notices = await eventsOf(env, 'credential.expiring', id);
    assert.equal(notices.length, 1);
    assert.deepEqual(
      { reason: notices[0]!.reason, kind: notices[0]!.kind, notice: notices[0]!.notice, days_left: notices[0]!.days_left, owner: notices[0]!.owner },
      { reason: 'rotation_due', kind: 'refresh_token', notice: '14d', days_left: 13, owner: 'fixed@example.com' },
    );
    await env.warrant.rotations.run();
    assert.equal((await eventsOf(env, 'credential.expiring', id)).length, 1, 'once');
    t += 12 * DAY_MS;
    await env.warrant.rotations.run();
    notices = await eventsOf(env, 'credential.expiring', id);
    assert.deepEqual(notices.map((n) => n.notice), ['14d', '2d']);
    assert.equal(env.sandbox.stats().refreshRequests, 0, 'Warrant cannot rotate it: it does not try');
    assert.equal((await eventsOf(env, 'rotation.completed', id)).length, 0);
    await env.warrant.connections.revoke(id, 'admin');
  });

  test('a JWT-bearer key: new key pair 14 days ahead, public key shown, old key used until the new one works, then retired', async () => {
    const account = await env.sandbox.addServiceAccount({ client_id: `svc-rot-${kind.name}`, scope: 'items:read' });
    env.warrant.catalog.set('sandbox-sa', providerSchema.parse(env.sandbox.serviceAccountDefinition('sandbox-sa', account.client_id)));
    const row = await env.warrant.connections.importGrant(
      { provider: 'sandbox-sa', owner: 'ops@example.com', scopes: ['items:read'], private_key: account.privateKeyPem, params: { subject: 'alice@example.com' } },
      'admin',
    );
    await env.warrant.tokens.getFreshToken(row.id);
    t += 77 * DAY_MS; // 13 days before the 90-day deadline

    const started = await env.warrant.app.inject({ method: 'POST', url: '/v1/rotations/run?due=true', headers });
    const mine = started.json().results.find((r: { connection?: string }) => r.connection === row.id);
    assert.equal(mine?.outcome, 'pending', started.body);
    const [announced] = await eventsOf(env, 'rotation.started', row.id);
    assert.equal(announced?.public_key_thumbprint, mine.public_key_thumbprint);

    const status = await env.warrant.app.inject({ method: 'GET', url: `/v1/rotations/${row.id}`, headers });
    assert.equal(status.statusCode, 200, status.body);
    const pending = status.json().pending_key;
    assert.match(pending.public_key_pem, /^-----BEGIN PUBLIC KEY-----/);
    assert.equal(pending.public_key_jwk.kty, 'RSA');
    assert.equal(pending.public_key_jwk.kid, mine.public_key_thumbprint);
    assert.ok(!status.body.includes('PRIVATE KEY'), 'never the private half');

    // Not uploaded yet: the old key keeps minting tokens, the new one is refused and stays pending.
    env.sandbox.resetStats();
    const withOld = await env.warrant.tokens.getFreshToken(row.id);
    assert.equal(withOld.refreshed, true, 'the old key mints a token');
    const notYet = await env.warrant.rotations.run({ connection: row.id });
    assert.equal(notYet.results[0]?.outcome, 'pending');
    assert.match(notYet.results[0]!.detail, /does not accept the new key yet/);
    assert.equal(await env.warrant.store.vault.get({ scope: 'connection', ref: row.id, field: 'private_key' }), account.privateKeyPem);

    // The admin uploads it (the sandbox's Google-style second key): the next pass sees it work and retires the old key.
    env.sandbox.addServiceAccountKey(account.client_id, pending.public_key_pem);
    const done = await env.warrant.rotations.run({ connection: row.id });
    assert.deepEqual(
      { outcome: done.results[0]?.outcome, verified: done.results[0]?.verified, verification: done.results[0]?.verification },
      { outcome: 'completed', verified: true, verification: 'token_request' },
    );
    const [completed] = await eventsOf(env, 'rotation.completed', row.id);
    assert.equal(completed?.kind, 'private_key');
    assert.equal(completed?.new_key_thumbprint, mine.public_key_thumbprint);
    assert.notEqual(completed?.old_key_thumbprint, completed?.new_key_thumbprint);
    assert.notEqual(await env.warrant.store.vault.get({ scope: 'connection', ref: row.id, field: 'private_key' }), account.privateKeyPem, 'the old key is gone from the vault');
    assert.equal(await env.warrant.store.vault.get({ scope: 'connection', ref: row.id, field: 'pending_private_key' }), undefined);
    assert.equal((await env.warrant.connections.get(row.id)).credential_issued_at, t);

    // The old key deleted at the IdP: tokens keep coming, signed with the new key.
    env.sandbox.removeServiceAccountKey(account.client_id, account.publicKeyPem);
    t += 2 * 3600_000;
    const withNew = await env.warrant.tokens.getFreshToken(row.id);
    assert.equal(withNew.refreshed, true, 'the new key mints a token');
    const who = await (await fetch(`${env.sandbox.apiBaseUrl}/whoami`, { headers: { authorization: `Bearer ${withNew.accessToken}` } })).json();
    assert.equal(who.sub, 'alice@example.com');
    const after = await env.warrant.app.inject({ method: 'GET', url: `/v1/rotations/${row.id}`, headers });
    assert.equal(after.json().state, 'current');
    assert.equal(after.json().pending_key, undefined);
  });

  test('client secrets: age tracked from a keyed fingerprint; a new one is recorded; credential.expiring to the admin before 90 days', async () => {
    await env.warrant.rotations.run();
    const tracked = await env.warrant.store.rotations.get('client_secret', 'secret-a/production');
    assert.equal(typeof tracked?.fingerprint, 'string', 'a fingerprint is kept');
    assert.equal(typeof tracked?.issued_at, 'number', 'its age is tracked');
    assert.equal(tracked!.fingerprint!.includes('warrant-sandbox-secret'), false, 'never the secret');
    const def = env.warrant.catalog.get('secret-a')!;
    env.warrant.catalog.set('secret-a', { ...def, client_secret: 'a-new-secret-from-the-console' });
    const changed = await env.warrant.rotations.run();
    assert.equal(changed.results.find((r) => r.kind === 'client_secret' && r.provider === 'secret-a')?.outcome, 'completed');
    const recorded = (await env.warrant.audit.query({ type: 'rotation.completed', subject: 'provider:secret-a' })).map((e) => e.data as Record<string, unknown>);
    assert.equal(recorded.length, 1);
    assert.equal(recorded[0]!.kind, 'client_secret');
    assert.equal(JSON.stringify(recorded).includes('a-new-secret'), false, 'never the secret');
    t += 80 * DAY_MS;
    const listed = (await env.warrant.rotations.list({ due: true })).find((r) => r.kind === 'client_secret' && r.provider === 'secret-a');
    assert.equal(listed?.state, 'admin_action');
    await env.warrant.rotations.run();
    await env.warrant.rotations.run();
    const notices = (await env.warrant.audit.query({ type: 'credential.expiring', subject: 'provider:secret-a' })).map((e) => e.data as Record<string, unknown>);
    // The secret first seen in the first test was already past its 90 days (a 2-day notice, days_left 0);
    // the new one starts over: one 14-day notice, however many passes.
    assert.deepEqual(notices.at(-1) && [notices.at(-1)!.kind, notices.at(-1)!.reason, notices.at(-1)!.notice, notices.at(-1)!.days_left], ['client_secret', 'rotation_due', '14d', 10]);
    assert.equal(notices.filter((n) => n.notice === '14d' && n.days_left === 10).length, 1);
  });

  test('input is validated: unknown connection 404, due=false refused naming the field', async () => {
    const missing = await env.warrant.app.inject({ method: 'GET', url: '/v1/rotations/con_nope', headers });
    assert.equal(missing.statusCode, 404);
    const bad = await env.warrant.app.inject({ method: 'POST', url: '/v1/rotations/run?due=false', headers });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().code, 'invalid_request');
    assert.match(bad.body, /due/);
  });
});

describe('rotation schedules on two instances sharing PostgreSQL', { skip: skipWithoutPostgres }, () => {
  test('a due refresh token is rotated once: one refresh at the IdP, one rotation.completed', async () => {
    let t = Date.now();
    const first = await startLifecycle({ store: 'postgres', now: () => t, sandbox: { accessTokenTtl: 3600, refreshTokenTtl: 365 * 86_400 } });
    const second = await startLifecycle({
      store: 'postgres',
      now: () => t,
      sharedSandbox: first.sandbox,
      shared: { pgSchema: first.env.WARRANT_TEST_PG_SCHEMA!, masterKey: first.env.WARRANT_MASTER_KEY!, providersFile: first.providersFile },
    });
    try {
      const id = await first.connect('both@example.com');
      const old = (await refreshTokenOf(first, id))!;
      t += 31 * DAY_MS;
      first.sandbox.resetStats();
      const [a, b] = await Promise.all([first.warrant.rotations.run(), second.warrant.rotations.run()]);
      const outcomes = [...a.results, ...b.results].filter((r) => r.connection === id).map((r) => r.outcome);
      assert.deepEqual(outcomes, ['completed']);
      assert.equal(first.sandbox.stats().refreshRequests, 1);
      assert.equal(first.sandbox.stats().reuseDetected, 0);
      assert.equal((await eventsOf(first, 'rotation.completed', id)).length, 1);
      assert.equal(await introspect(first, old), false);
      // The token service's lock and claim alone also keep it once (no pass lock): forced refreshes race.
      t += 31 * DAY_MS;
      const row = await first.warrant.connections.get(id);
      const [x, y] = await Promise.all([
        first.warrant.tokens.getFreshToken(id, { refreshedAtOrBefore: row.last_refreshed_at!, actor: 'rotation' }),
        second.warrant.tokens.getFreshToken(id, { refreshedAtOrBefore: row.last_refreshed_at!, actor: 'rotation' }),
      ]);
      assert.equal([x, y].filter((r) => r.refreshed).length >= 1, true);
      assert.equal(first.sandbox.stats().refreshRequests, 2);
    } finally {
      await second.cleanup();
      await first.cleanup();
    }
  });
});
