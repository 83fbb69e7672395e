import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const warrantBin = fileURLToPath(new URL('../../bin/warrant.js', import.meta.url));

export interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the first match of `re` on stdout or stderr. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exit(): Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export function runWarrant(args: string[], env: Record<string, string | undefined>): Spawned {
  const child = spawn(process.execPath, [warrantBin, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters: (() => void)[] = [];
  const poke = () => waiters.splice(0).forEach((w) => w());
  child.stdout!.on('data', (d) => ((out += d), poke()));
  child.stderr!.on('data', (d) => ((err += d), poke()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => (poke(), resolve(code))));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; stdout=${out} stderr=${err}`)), timeoutMs);
        const check = () => {
          const m = re.exec(out) ?? re.exec(err);
          if (m) {
            clearTimeout(timer);
            resolve(m);
          } else if (child.exitCode !== null) {
            clearTimeout(timer);
            reject(new Error(`exited ${child.exitCode} before ${re}; stdout=${out} stderr=${err}`));
          } else waiters.push(check);
        };
        check();
      });
    },
    exit: () => exited,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}
