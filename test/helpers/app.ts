import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant, type Warrant } from '../../src/warrant.ts';
import { loggerOptions } from '../../src/http/logger.ts';

/** A logger whose every line is kept, so tests can assert what was (not) logged. */
export function captureLogger(level = 'info') {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { logger: pino(loggerOptions(level), stream), lines, text: () => lines.join('') };
}

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

export async function startTestWarrant(env: Record<string, string> = {}): Promise<{ warrant: Warrant; logs: ReturnType<typeof captureLogger>; cleanup(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'warrant-app-'));
  const config = loadConfig({ WARRANT_DATA_DIR: dir, WARRANT_ADMIN_TOKEN: ADMIN_TOKEN, WARRANT_PORT: '0', ...env });
  const logs = captureLogger();
  const warrant = await createWarrant(config, { logger: logs.logger, notice: () => {} });
  return {
    warrant,
    logs,
    cleanup: async () => {
      await warrant.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
