/** A clock tests move by hand: `advance(ms)` fires due timers in order, no sleeping. */
import type { Clock, Timer } from '../../src/clock.ts';

interface Pending {
  at: number;
  fn: () => void;
  unref(): void;
}

export class ManualClock implements Clock {
  #now: number;
  #timers = new Set<Pending>();

  constructor(start = Date.UTC(2026, 10, 21, 12, 0, 0)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const pending: Pending = { at: this.#now + Math.max(0, ms), fn, unref: () => {} };
    this.#timers.add(pending);
    return pending;
  }

  clearTimeout(timer: Timer): void {
    this.#timers.delete(timer as Pending);
  }

  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      const next = [...this.#timers].filter((t) => t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.#timers.delete(next);
      this.#now = next.at;
      next.fn();
    }
    this.#now = until;
  }
}
