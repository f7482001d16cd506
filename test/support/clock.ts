/** A clock tests set by hand: no sleeping, no waiting for real time to pass. */
import type { Clock } from '../../src/clock.ts';

export interface ManualClock extends Clock {
  set(date: Date | string): void;
  advance(ms: number): void;
}

export function manualClock(start: Date | string = '2026-11-22T09:00:00.000Z'): ManualClock {
  let now = new Date(start).getTime();
  return {
    now: () => new Date(now),
    set: (date) => {
      now = new Date(date).getTime();
    },
    advance: (ms) => {
      now += ms;
    },
  };
}
