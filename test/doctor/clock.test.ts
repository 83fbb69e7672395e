import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clockFinding } from '../../src/doctor/clock.ts';

const sample = (skewSeconds: number, roundTripMs = 20) => ({ url: 'https://idp.example/.well-known/openid-configuration', serverMs: 1_000_000 + skewSeconds * 1000, localMs: 1_000_000, roundTripMs });

test('the IdP clock: within 5 s ok, beyond warn, beyond 60 s error, either direction', () => {
  assert.equal(clockFinding('p/e', []), undefined);
  assert.equal(clockFinding('p/e', [sample(3)])?.verdict, 'ok');
  assert.equal(clockFinding('p/e', [sample(-20)])?.verdict, 'warn');
  const ahead = clockFinding('p/e', [sample(300)]);
  assert.equal(ahead?.verdict, 'error');
  assert.match(ahead.detail, /300 s ahead of this machine's/);
  assert.match(ahead.fix, /NTP/);
  assert.match(clockFinding('p/e', [sample(-90)])!.detail, /90 s behind/);
});

test('the sample with the shortest round trip decides, and its uncertainty is not counted as skew', () => {
  // 8 s apart but a 30 s round trip: the Date could have been written at any point of it.
  assert.equal(clockFinding('p/e', [sample(8, 30_000)])?.verdict, 'ok');
  assert.equal(clockFinding('p/e', [sample(8, 30_000), sample(120, 10)])?.verdict, 'error');
});
