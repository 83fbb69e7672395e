import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';

// The embedded mode keeps every secret of the deployment in one directory: the SQLite database
// (tokens sealed, but beside the key when the key file is used) and the key file itself. Nobody but
// the user Warrant runs as may read any of it.

/** An existing data dir or key file lets other users in. sysexits.h EX_CONFIG: a supervisor should not just restart. */
export class FileModeError extends Error {
  override name = 'FileModeError';
  readonly exitCode = 78;
}

const posix = process.platform !== 'win32';
const octal = (mode: number) => (mode & 0o777).toString(8).padStart(3, '0');
const shellQuote = (path: string) => (/^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`);

/** Refuses `path` when its mode gives group or others any access; names the path and the fix. */
export function assertOwnerOnly(path: string, kind: 'directory' | 'file'): void {
  if (!posix) return;
  const mode = statSync(path).mode;
  if ((mode & 0o077) === 0) return;
  const want = kind === 'directory' ? '700' : '600';
  throw new FileModeError(
    `${kind === 'directory' ? 'data directory' : 'file'} ${path} has mode ${octal(mode)}: other users may ` +
      `${kind === 'directory' ? 'enter it' : 'read it'}; Warrant keeps secrets there and needs ${want}. Fix: chmod ${want} ${shellQuote(path)}`,
  );
}

/** Creates the data dir 0700, or checks that an existing one is 0700 or narrower. */
export function ensurePrivateDir(dir: string): void {
  if (existsSync(dir)) assertOwnerOnly(dir, 'directory');
  else mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/**
 * Creates `file` empty with mode 0600 unless it exists; an existing one (and its SQLite `-wal`
 * and `-shm` companions) is narrowed to 0600. SQLite gives the WAL and shared-memory files the
 * database file's mode, so creating the database 0600 is what keeps them 0600 too.
 */
export function ensurePrivateFile(file: string, companions: string[] = []): void {
  if (!posix) return;
  try {
    closeSync(openSync(file, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  for (const path of [file, ...companions]) {
    try {
      if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
