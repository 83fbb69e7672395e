import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { CryptoError, open, parseKeyRing, rewrap, seal, safeEqual, hashSecret, verifySecret } from '../../src/crypto/index.ts';

const key = () => randomBytes(32).toString('base64');

test('seal then open returns the plaintext, for any string', () => {
  const ring = parseKeyRing(`a:${key()}`);
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 500 }), fc.string({ maxLength: 40 }), (plain, aad) => {
      assert.equal(open(ring, seal(ring, plain, aad), aad), plain);
    }),
    { numRuns: 200 },
  );
});

test('the ciphertext does not contain the plaintext, and two seals differ', () => {
  const ring = parseKeyRing(`a:${key()}`);
  const secret = 'ya29.super-secret-access-token';
  const a = seal(ring, secret, 'connection|c1|access_token');
  const b = seal(ring, secret, 'connection|c1|access_token');
  assert.notEqual(a.ciphertext, b.ciphertext);
  assert.ok(!JSON.stringify(a).includes(secret));
  assert.ok(!Buffer.from(a.ciphertext, 'base64').includes(Buffer.from(secret)));
});

test('tampering with any byte of the ciphertext or wrapped key is detected', () => {
  const ring = parseKeyRing(`a:${key()}`);
  const sealed = seal(ring, 'refresh-token-value', 'connection|c1|refresh_token');
  for (const field of ['ciphertext', 'wrappedKey'] as const) {
    const raw = Buffer.from(sealed[field], 'base64');
    for (let i = 0; i < raw.length; i += 7) {
      const bad = Buffer.from(raw);
      bad[i] = bad[i]! ^ 0x01;
      assert.throws(
        () => open(ring, { ...sealed, [field]: bad.toString('base64') }, 'connection|c1|refresh_token'),
        (e: unknown) => e instanceof CryptoError && e.code === 'tampered',
      );
    }
  }
});

test('a ciphertext bound to one row or field does not open for another', () => {
  const ring = parseKeyRing(`a:${key()}`);
  const sealed = seal(ring, 'token', 'connection|c1|access_token');
  assert.throws(() => open(ring, sealed, 'connection|c2|access_token'), CryptoError);
  assert.throws(() => open(ring, sealed, 'connection|c1|refresh_token'), CryptoError);
});

test('rewrap moves the data key to the active key; the old key is no longer needed', () => {
  const oldKey = key();
  const newKey = key();
  const before = parseKeyRing(`old:${oldKey}`);
  const sealed = seal(before, 'token', 'aad');
  const both = parseKeyRing(`new:${newKey},old:${oldKey}`);
  const moved = rewrap(both, sealed, 'aad');
  assert.equal(moved.kekId, 'new');
  assert.equal(moved.ciphertext, sealed.ciphertext);
  assert.equal(open(parseKeyRing(`new:${newKey}`), moved, 'aad'), 'token');
  assert.throws(() => open(parseKeyRing(`new:${newKey}`), sealed, 'aad'), (e: unknown) => e instanceof CryptoError && e.code === 'unknown_key');
});

test('key ring parsing: bare key gets a fingerprint id, bad keys are refused without echoing them', () => {
  const k = key();
  const ring = parseKeyRing(k);
  assert.match(ring.activeId, /^k[0-9a-f]{10}$/);
  assert.equal(parseKeyRing(k).activeId, ring.activeId);
  const short = Buffer.alloc(16, 1).toString('base64');
  assert.throws(() => parseKeyRing(`a:${short}`), (e: Error) => /32 bytes/.test(e.message) && !e.message.includes(short));
  assert.throws(() => parseKeyRing(`a:${k},a:${key()}`), /appears twice/);
  assert.deepEqual(parseKeyRing(`a:${k},b:${key()}`).ids, ['a', 'b']);
});

test('secret hashes compare in constant time and only match the same secret', () => {
  const h = hashSecret('wrt_abc');
  assert.ok(verifySecret('wrt_abc', h));
  assert.ok(!verifySecret('wrt_abd', h));
  assert.ok(!safeEqual('a', 'ab'));
  assert.ok(safeEqual('same', 'same'));
});
