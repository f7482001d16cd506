/**
 * Progress of a long operation (`sync --wait`, `reconcile --wait`, `credentials rotate-key`) for a person at a
 * terminal: one line on stdout, rewritten in place, ending in the time elapsed. Not at a terminal it prints
 * nothing: a program reads the operation's JSON result instead.
 */
import type { Io } from './verb.ts';

export interface Progress {
  /** What is going on now (`incident: 12 pages, 12,000 records`); the elapsed time is added. */
  update(text: string): void;
  /** Ends the line so what follows starts on its own. */
  done(): void;
}

/** At most this often is the line rewritten: a terminal need not redraw on every page. */
const REDRAW_MS = 100;

export function startProgress(io: Pick<Io, 'terminal' | 'write'>, now: () => number = Date.now): Progress {
  const started = now();
  let shown = false;
  let drawnAt = -Infinity;
  let width = 0;
  return {
    update(text) {
      if (!io.terminal) return;
      const at = now();
      if (at - drawnAt < REDRAW_MS) return;
      drawnAt = at;
      const line = `${text} (${((at - started) / 1000).toFixed(1)} s)`;
      // Pad over what was there: a shorter line must not leave the end of a longer one behind.
      io.write(`\r${line.padEnd(width)}`);
      width = line.length;
      shown = true;
    },
    done() {
      if (shown) io.write('\n');
      shown = false;
      width = 0;
    },
  };
}

/** 12345 → "12,345": counts a person reads at a glance. */
export const count = (n: number): string => n.toLocaleString('en-US');
