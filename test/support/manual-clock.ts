/** A clock tests move by hand: `advance(ms)` fires due timers in order, no sleeping. */
import type { Clock, Timer } from '../../src/clock.ts';

interface Pending {
  at: number;
  fn: () => void;
  unref(): void;
  refresh(): Pending;
  cleared: boolean;
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
    const pending: Pending = {
      at: this.#now + Math.max(0, ms),
      fn,
      unref: () => {},
      // As Node's: from now, again after it fired, never once cleared.
      refresh: () => {
        if (pending.cleared) return pending;
        pending.at = this.#now + Math.max(0, ms);
        this.#timers.add(pending);
        return pending;
      },
      cleared: false,
    };
    this.#timers.add(pending);
    return pending;
  }

  clearTimeout(timer: Timer): void {
    const pending = timer as Pending | undefined;
    if (pending) pending.cleared = true;
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
