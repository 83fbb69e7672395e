import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, sleep } from '../helpers/lifecycle.ts';

// The field failure: a long batch whose 24 h token expires halfway, with partial completion and
// no recovery. Here tokens live 4 s and the batch runs 62 s: ~15 lifetimes.
test('a batch of 2,000+ token uses over 60 s across many expiries: zero failures, refreshes ≈ elapsed / interval', { timeout: 120_000 }, async () => {
  const lifetimeS = 4;
  const env = await startLifecycle({ sandbox: { accessTokenTtl: lifetimeS, rotateRefreshTokens: true }, scheduler: true });
  try {
    const id = await env.connect();
    await env.warrant.tokens.getFreshToken(id);
    env.sandbox.resetStats();
    const started = Date.now();
    const durationMs = 62_000;
    let uses = 0;
    const failures: string[] = [];
    // Four workers, like a small agent pool, each using the token against the API.
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (Date.now() - started < durationMs) {
          try {
            const t = await env.warrant.tokens.getFreshToken(id, { minTtlSeconds: 0.2 });
            const res = await fetch(`${env.sandbox.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${t.accessToken}` } });
            await res.arrayBuffer();
            if (res.status !== 200) failures.push(`api ${res.status}`);
          } catch (err) {
            failures.push(String(err));
          }
          uses++;
          await sleep(100);
        }
      }),
    );
    const elapsedS = (Date.now() - started) / 1000;
    const refreshes = env.sandbox.stats().refreshRequests;
    // Refresh interval: lifetime minus skew (a quarter of a short token's life).
    const intervalS = lifetimeS * 0.75;
    const expected = elapsedS / intervalS;
    console.log(`# batch: ${uses} uses in ${elapsedS.toFixed(1)} s, ${refreshes} refreshes (expected ${expected.toFixed(1)}), ${failures.length} failures`);
    assert.ok(uses >= 2000, `only ${uses} uses`);
    assert.deepEqual(failures, []);
    assert.ok(Math.abs(refreshes - expected) <= 1, `${refreshes} refreshes, expected ${expected.toFixed(1)} ± 1`);
    assert.equal(env.sandbox.stats().reuseDetected, 0);
  } finally {
    await env.cleanup();
  }
});
