// Progress of the batch: a bar redrawn in place on a terminal, plain lines every tenth of the way
// otherwise (a log file or CI). Notes (what just happened) go above the bar.

export interface ProgressCounts {
  done: number;
  ok: number;
  retries: number;
  failed: number;
}

export interface Progress {
  update(counts: ProgressCounts): void;
  note(line: string): void;
  finish(counts: ProgressCounts): void;
}

const width = 20;
const redrawEveryMs = 80;

export function createProgress(total: number, opts: { tty: boolean; write: (s: string) => void; startedAt?: number }): Progress {
  const started = opts.startedAt ?? Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  const numbers = (c: ProgressCounts) => `${String(c.done).padStart(String(total).length)}/${total} calls  ok ${c.ok}  retries ${c.retries}  failed ${c.failed}`;
  let last: ProgressCounts = { done: 0, ok: 0, retries: 0, failed: 0 };
  let drawnAt = 0;
  let barShown = false;
  const step = Math.max(1, Math.ceil(total / 10));
  let nextLineAt = step;
  let printedDone = -1;
  const line = (c: ProgressCounts) => {
    opts.write(`  [${elapsed().padStart(7)}] ${numbers(c)}\n`);
    printedDone = c.done;
  };

  const bar = (c: ProgressCounts) => {
    const filled = Math.round((c.done / total) * width);
    // Short enough for an 80-column terminal: a wrapped line could not be redrawn in place.
    return `  ${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${c.done}/${total}  ok ${c.ok}  retries ${c.retries}  failed ${c.failed}  ${elapsed()}`;
  };
  const draw = () => {
    opts.write(`\r\x1b[2K${bar(last)}`);
    barShown = true;
    drawnAt = Date.now();
  };

  return {
    update(counts) {
      last = counts;
      if (opts.tty) {
        if (Date.now() - drawnAt >= redrawEveryMs) draw();
        return;
      }
      if (counts.done >= nextLineAt) {
        line(counts);
        while (nextLineAt <= counts.done) nextLineAt += step;
      }
    },
    note(text) {
      if (opts.tty && barShown) opts.write('\r\x1b[2K');
      opts.write(`  [${elapsed().padStart(7)}] ${text}\n`);
      if (opts.tty && barShown) draw();
    },
    finish(counts) {
      last = counts;
      if (opts.tty) {
        draw();
        opts.write('\n');
      } else if (printedDone !== counts.done) line(counts);
    },
  };
}
