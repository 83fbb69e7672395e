import { Command } from 'commander';
import type { CliIo } from '../../src/cli/table.ts';
import { baseUrlOf } from './lifecycle.ts';
import { ADMIN_TOKEN } from './app.ts';

// Runs an admin command in-process against a running Warrant, as `warrant …` would (a subprocess
// costs seconds of start-up): its output captured, its exit code read from process.exitCode.

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Admin credential (default the admin token); null: none. */
  token?: string | null;
  /** Pretend stdout is a terminal this wide, with colours. */
  tty?: { columns: number };
  /** Called with each stdout chunk as it is written (e.g. to act on a printed link while the command waits). */
  onStdout?: (text: string) => void;
}

export { baseUrlOf };

export function cliRunner(make: (io: CliIo) => Command, base: () => string) {
  return async function run(args: string[], o: CliOptions = {}): Promise<CliRun> {
    let stdout = '';
    let stderr = '';
    const io: CliIo = {
      stdout: (t) => {
        stdout += t;
        o.onStdout?.(t);
      },
      stderr: (t) => void (stderr += t),
      columns: o.tty?.columns,
      color: !!o.tty,
    };
    const program = new Command('warrant').exitOverride();
    program.addCommand(make(io));
    const token = o.token === undefined ? ADMIN_TOKEN : o.token;
    process.exitCode = undefined;
    await program.parseAsync(['node', 'warrant', ...args, '--url', base(), ...(token === null ? [] : ['--token', token])]);
    const code = Number(process.exitCode ?? 0);
    process.exitCode = undefined;
    return { code, stdout, stderr };
  };
}
