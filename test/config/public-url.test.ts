import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, ConfigError, isLoopbackHost } from '../../src/config/index.ts';

// Reproduces security review finding 20: a plain http:// WARRANT_PUBLIC_URL on a non-loopback host
// was accepted, so browsers carried authorization codes and connect cookies over the network in clear.

const refused = (env: Record<string, string>) =>
  assert.throws(
    () => loadConfig(env),
    (e: Error) => e instanceof ConfigError && /WARRANT_PUBLIC_URL/.test(e.message) && /WARRANT_ALLOW_INSECURE_HTTP=1/.test(e.message),
  );

test('a non-loopback http:// public URL is refused, naming the variable and the way out', () => {
  for (const url of ['http://warrant.example.com', 'http://10.0.0.5:7070/', 'http://[2001:db8::1]:7070', 'http://128.0.0.1', 'http://localhost.example.com']) {
    refused({ WARRANT_PUBLIC_URL: url });
  }
  // The default follows WARRANT_HOST: listening on every interface gives an http:// URL others reach.
  refused({ WARRANT_HOST: '0.0.0.0' });
  refused({ WARRANT_HOST: '192.168.1.10', WARRANT_ALLOW_INSECURE_HTTP: '0' });
});

test('WARRANT_ALLOW_INSECURE_HTTP=1 accepts it', () => {
  const c = loadConfig({ WARRANT_PUBLIC_URL: 'http://warrant.internal:7070', WARRANT_ALLOW_INSECURE_HTTP: '1' });
  assert.equal(c.publicUrl, 'http://warrant.internal:7070');
  assert.equal(c.allowInsecureHttp, true);
  assert.equal(loadConfig({ WARRANT_HOST: '0.0.0.0', WARRANT_ALLOW_INSECURE_HTTP: 'true' }).publicUrl, 'http://0.0.0.0:7070');
  assert.throws(() => loadConfig({ WARRANT_ALLOW_INSECURE_HTTP: 'yes' }), /WARRANT_ALLOW_INSECURE_HTTP/);
});

test('loopback http:// and any https:// stay allowed', () => {
  for (const url of [
    'http://127.0.0.1:7070',
    'http://127.8.9.10',
    'http://localhost:7070',
    'http://LOCALHOST.',
    'http://warrant.localhost',
    'http://[::1]:7070',
    'http://[::ffff:127.0.0.1]:7070',
    'https://warrant.example.com',
    'https://10.0.0.5',
  ]) {
    assert.equal(loadConfig({ WARRANT_PUBLIC_URL: url }).allowInsecureHttp, false, url);
  }
  assert.equal(loadConfig({}).publicUrl, 'http://127.0.0.1:7070');
  assert.equal(loadConfig({ WARRANT_HOST: '::1' }).publicUrl, 'http://[::1]:7070');
});

test('isLoopbackHost', () => {
  for (const h of ['127.0.0.1', '127.255.255.254', '[::1]', '::1', 'localhost', 'a.localhost', '::ffff:7f00:1']) assert.ok(isLoopbackHost(h), h);
  for (const h of ['0.0.0.0', '10.0.0.1', '1.127.0.0', '[::2]', 'localhost.evil', 'evil-localhost', '::ffff:a00:1']) assert.ok(!isLoopbackHost(h), h);
});

test('WARRANT_METRICS_TOKEN is read and kept out of error messages', () => {
  assert.equal(loadConfig({ WARRANT_METRICS_TOKEN: 'm'.repeat(24) }).metricsToken, 'm'.repeat(24));
  assert.equal(loadConfig({}).metricsToken, undefined);
  assert.throws(
    () => loadConfig({ WARRANT_METRICS_TOKEN: 'short-metric' }),
    (e: Error) => /WARRANT_METRICS_TOKEN/.test(e.message) && !e.message.includes('short-metric'),
  );
});
