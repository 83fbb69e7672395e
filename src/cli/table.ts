// Output of the admin commands: aligned tables and `key: value` blocks. On a terminal a table is cut
// to its width (the widest columns first, with `…`) and statuses are coloured; piped, or with
// NO_COLOR set, it is plain text with nothing cut, so `grep` and `awk` see whole values.

/** Where a command prints, and how (tests pass their own). */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** The terminal's width when stdout is one; undefined otherwise: nothing is truncated. */
  columns?: number;
  /** ANSI colours: only on a terminal, and never with NO_COLOR (https://no-color.org) or TERM=dumb. */
  color: boolean;
}

export function processIo(): CliIo {
  const tty = !!process.stdout.isTTY;
  return {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    columns: tty ? process.stdout.columns || 100 : undefined,
    color: tty && !process.env.NO_COLOR && process.env.TERM !== 'dumb',
  };
}

const COLOURS = { green: 32, yellow: 33, red: 31, grey: 90 } as const;
export type Colour = keyof typeof COLOURS;

/** The colour of a status word wherever one is printed. */
export function statusColour(status: string): Colour | undefined {
  if (['active', 'completed', 'delivered', 'ok', 'yes'].includes(status)) return 'green';
  if (['pending', 'suspended', 'expired', 'verifying', 'disabled'].includes(status)) return 'yellow';
  if (['reauth_required', 'error', 'failed', 'broken', 'NO', 'orphan'].includes(status) || status.startsWith('orphan')) return 'red';
  if (status === 'revoked') return 'grey';
  return undefined;
}

export const paint = (io: Pick<CliIo, 'color'>, colour: Colour | undefined, text: string): string =>
  io.color && colour ? `\u001b[${COLOURS[colour]}m${text}\u001b[0m` : text;

export interface Column {
  header: string;
  /** Colour of a cell by its value (applied after padding, so alignment holds). */
  colour?: (value: string) => Colour | undefined;
  /** Never shortened (ids: a cut id is useless). */
  keep?: boolean;
}

const MIN_WIDTH = 6;
const cut = (s: string, w: number) => (s.length <= w ? s : w <= 1 ? '…'.slice(0, w) : `${s.slice(0, w - 1)}…`);

/** The lines of a table: a header row, then one line per row, columns two spaces apart. */
export function table(columns: (string | Column)[], rows: string[][], io: Pick<CliIo, 'columns' | 'color'>): string[] {
  const cols = columns.map((c) => (typeof c === 'string' ? { header: c } : c));
  const all = [cols.map((c) => c.header), ...rows.map((r) => cols.map((_, i) => (r[i] ?? '').replace(/[\r\n\t]+/g, ' ')))];
  const widths = cols.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  if (io.columns) {
    const total = () => widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1);
    for (let over = total() - io.columns; over > 0; over--) {
      let widest = -1;
      for (let i = 0; i < cols.length; i++) if (!cols[i]!.keep && widths[i]! > MIN_WIDTH && (widest < 0 || widths[i]! > widths[widest]!)) widest = i;
      if (widest < 0) break;
      widths[widest]!--;
    }
  }
  return all.map((r, line) =>
    r
      .map((cell, i) => {
        const text = cut(cell, widths[i]!);
        const padded = i === r.length - 1 ? text : text.padEnd(widths[i]!);
        const colour = line > 0 ? cols[i]!.colour?.(cell) : undefined;
        return colour ? padded.replace(text, paint(io, colour, text)) : padded;
      })
      .join('  ')
      .trimEnd(),
  );
}

/** `key: value` lines, the keys aligned; rows whose value is undefined are left out. */
export function fields(pairs: [string, string | undefined][]): string[] {
  const shown = pairs.filter((p): p is [string, string] => p[1] !== undefined);
  const width = Math.max(0, ...shown.map(([k]) => k.length)) + 1;
  return shown.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`.trimEnd());
}

/** `in 4m`, `3h ago`, from an ISO time (or `-` for none); relative to `now`. */
export function relative(isoTime: string | null | undefined, now = Date.now()): string {
  if (!isoTime) return '-';
  const ms = Date.parse(isoTime) - now;
  const abs = Math.abs(ms);
  const span =
    abs < 60_000 ? `${Math.round(abs / 1000)}s` : abs < 3_600_000 ? `${Math.round(abs / 60_000)}m` : abs < 172_800_000 ? `${Math.round(abs / 3_600_000)}h` : `${Math.round(abs / 86_400_000)}d`;
  return ms >= 0 ? `in ${span}` : `${span} ago`;
}

/** An ISO time with its relative form: `2025-06-01T10:00:00.000Z (in 4m)`. */
export const when = (isoTime: string | null | undefined, now = Date.now()): string => (isoTime ? `${isoTime} (${relative(isoTime, now)})` : '-');

/** Tags as one cell: `user=u1 org=o1 env=prod`. */
export function tagsCell(t: { end_user?: string | null; organization?: string | null; labels?: Record<string, string> }): string {
  const parts = [...(t.end_user ? [`user=${t.end_user}`] : []), ...(t.organization ? [`org=${t.organization}`] : []), ...Object.entries(t.labels ?? {}).map(([k, v]) => `${k}=${v}`)];
  return parts.join(' ');
}

/** The API's JSON as is, for `--json`. */
export const printJson = (io: Pick<CliIo, 'stdout'>, value: unknown): void => io.stdout(`${JSON.stringify(value, null, 2)}\n`);

/** Prints lines. */
export const printLines = (io: Pick<CliIo, 'stdout'>, lines: string[]): void => io.stdout(lines.length ? `${lines.join('\n')}\n` : '');
