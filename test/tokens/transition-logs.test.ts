import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, sleep, type LifecycleEnv } from '../helpers/lifecycle.ts';

const lines = (env: LifecycleEnv) =>
  env.logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => typeof l.connection === 'string');

// Regression: a grant turning `reauth_required` and a connection recovering wrote no log line,
// so a deployment without webhooks never heard of a dead grant.
describe('connection transitions are logged once, without secrets', () => {
  let env: LifecycleEnv;
  before(async () => {
    env = await startLifecycle({ logLevel: 'info', sandbox: { accessTokenTtl: 3, rotateRefreshTokens: true } });
  });
  after(async () => env?.cleanup());

  test('a refresh failing then recovering: one warn line for the incident, one info line for the recovery', async () => {
    const id = await env.connect('carol@example.com');
    env.sandbox.setFaults({ tokenEndpoint: { status: 503 } });
    await sleep(3_000);
    for (let i = 0; i < 3; i++) {
      await env.warrant.tokens.getFreshToken(id).catch(() => undefined);
      await sleep(2_100);
    }
    env.sandbox.setFaults({});
    await sleep(2_100);
    const fresh = await env.warrant.tokens.getFreshToken(id);
    assert.ok(fresh.refreshed);
    const mine = lines(env).filter((l) => l.connection === id);
    const warns = mine.filter((l) => l.level === 40);
    assert.equal(warns.length, 1, JSON.stringify(warns));
    assert.equal(warns[0]!.error, 'temporarily_unavailable');
    assert.equal(warns[0]!.owner, 'carol@example.com');
    assert.equal(warns[0]!.provider, 'sandbox');
    const infos = mine.filter((l) => l.level === 30 && l.msg === 'connection recovered');
    assert.equal(infos.length, 1);
    assert.ok(!env.logs.text().includes(fresh.accessToken), 'no token in the logs');
  });

  test('a revoked grant: one warn line naming connection, provider, owner and error', async () => {
    const id = await env.connect('dave@example.com');
    const t = await env.warrant.tokens.getFreshToken(id);
    await env.sandbox.revokeGrantOf(t.accessToken);
    await sleep(3_000);
    for (let i = 0; i < 5; i++) await env.warrant.tokens.getFreshToken(id).catch(() => undefined);
    const warns = lines(env).filter((l) => l.connection === id && l.level === 40);
    assert.equal(warns.length, 1, JSON.stringify(warns));
    assert.deepEqual(
      { provider: warns[0]!.provider, owner: warns[0]!.owner, error: warns[0]!.error },
      { provider: 'sandbox', owner: 'dave@example.com', error: 'invalid_grant' },
    );
    assert.match(String(warns[0]!.msg), /re-authorization/);
    assert.ok(!env.logs.text().includes(t.accessToken));
  });
});
