import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/http/logger.ts';
import { loadConfig, ConfigError } from '../../src/config/index.ts';

function sink() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return { stream, text: () => chunks.join('') };
}

describe('log format', () => {
  test('pretty: a human-readable line, with the same redaction as JSON', () => {
    const out = sink();
    const logger = createLogger('info', { format: 'pretty', destination: out.stream });
    logger.info({ connection: 'con_1', access_token: 'secret-access-token' }, 'connection recovered');
    const text = out.text();
    assert.match(text, /INFO.*connection recovered/);
    assert.throws(() => JSON.parse(text.trim()), 'not JSON');
    assert.ok(!text.includes('secret-access-token'));
    assert.match(text, /\[redacted\]/);
  });

  test('unset: JSON when stdout is not a TTY, pretty when it is', () => {
    const json = sink();
    createLogger('info', { destination: json.stream, isTty: false }).info('hello');
    assert.equal(JSON.parse(json.text().trim()).msg, 'hello');
    const tty = sink();
    createLogger('info', { destination: tty.stream, isTty: true }).info('hello');
    assert.throws(() => JSON.parse(tty.text().trim()));
  });

  test('WARRANT_LOG_FORMAT is validated', () => {
    assert.equal(loadConfig({ WARRANT_LOG_FORMAT: 'json' }).logFormat, 'json');
    assert.throws(() => loadConfig({ WARRANT_LOG_FORMAT: 'xml' }), (err: unknown) => err instanceof ConfigError && /WARRANT_LOG_FORMAT/.test(err.message));
  });
});
