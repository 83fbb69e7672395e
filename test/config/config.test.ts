import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig, ConfigError, defaults } from '../../src/config/index.ts';

test('defaults follow DESIGN.md', () => {
  const c = loadConfig({});
  assert.equal(c.port, 7070);
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.publicUrl, 'http://127.0.0.1:7070');
  assert.equal(c.dataDir, resolve('./.warrant'));
  assert.equal(c.storeKind, 'embedded');
  assert.equal(c.refreshSkewSeconds, defaults.refreshSkewSeconds);
  assert.ok(Object.isFrozen(c));
});

test('every variable is read', () => {
  const c = loadConfig({
    WARRANT_PORT: '8080',
    WARRANT_HOST: '0.0.0.0',
    WARRANT_PUBLIC_URL: 'https://warrant.example.com/',
    WARRANT_ADMIN_TOKEN: 'x'.repeat(32),
    WARRANT_MASTER_KEY: 'k1:' + Buffer.alloc(32).toString('base64'),
    WARRANT_DATA_DIR: '/tmp/w',
    DATABASE_URL: 'postgres://u@h:5432/db',
    REDIS_URL: 'redis://127.0.0.1:6379',
    WARRANT_PROVIDERS: './providers',
  });
  assert.equal(c.port, 8080);
  assert.equal(c.host, '0.0.0.0');
  assert.equal(c.publicUrl, 'https://warrant.example.com');
  assert.equal(c.storeKind, 'postgres');
  assert.equal(c.redisUrl, 'redis://127.0.0.1:6379');
  assert.equal(c.providersPath, resolve('./providers'));
});

test('a bad value stops start-up naming the variable, without echoing the value', () => {
  assert.throws(() => loadConfig({ WARRANT_PORT: 'seventy' }), (e: Error) => e instanceof ConfigError && /WARRANT_PORT/.test(e.message));
  assert.throws(() => loadConfig({ WARRANT_PORT: '70000' }), /WARRANT_PORT/);
  assert.throws(() => loadConfig({ DATABASE_URL: 'mysql://x', WARRANT_MASTER_KEY: 'k' }), /DATABASE_URL/);
  assert.throws(() => loadConfig({ REDIS_URL: 'http://x' }), /REDIS_URL/);
  assert.throws(
    () => loadConfig({ WARRANT_ADMIN_TOKEN: 'short-secret' }),
    (e: Error) => /WARRANT_ADMIN_TOKEN/.test(e.message) && !e.message.includes('short-secret'),
  );
  assert.throws(() => loadConfig({ DATABASE_URL: 'postgres://h/db' }), /WARRANT_MASTER_KEY: required with DATABASE_URL/);
});

test('a config file adds settings; the environment wins', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-cfg-'));
  const file = join(dir, 'warrant.yaml');
  writeFileSync(file, 'WARRANT_PORT: 9000\nWARRANT_HOST: 127.0.0.2\n');
  const c = loadConfig({ WARRANT_CONFIG: file, WARRANT_HOST: '127.0.0.3' });
  assert.equal(c.port, 9000);
  assert.equal(c.host, '127.0.0.3');
  writeFileSync(file, 'WARRANT_NOPE: 1\n');
  assert.throws(() => loadConfig({ WARRANT_CONFIG: file }), /unknown setting WARRANT_NOPE/);
});
