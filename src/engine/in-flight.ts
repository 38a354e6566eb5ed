/**
 * Attempts in flight, tracked so that shutdown can wait for them for a grace
 * period and then abort the rest (which hand their leases back).
 */
import type { Clock } from '../clock.ts';

export class ShutdownError extends Error {
  override name = 'ShutdownError';
  readonly code = 'SPILLWAY_SHUTDOWN';
}

interface Entry {
  done: Promise<void>;
  controller: AbortController;
}

export class InFlight {
  readonly #entries = new Set<Entry>();

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Runs `work` with a signal that fires at shutdown. The returned promise never
   * rejects: nobody awaits background work, so its failure goes to `onFailure`.
   */
  track(work: (shutdown: AbortSignal) => Promise<void>, onFailure: (error: unknown) => void): Promise<void> {
    const controller = new AbortController();
    const entry: Entry = { controller, done: Promise.resolve() };
    entry.done = work(controller.signal)
      .catch(onFailure)
      .finally(() => this.#entries.delete(entry));
    this.#entries.add(entry);
    return entry.done;
  }

  /** Resolves once nothing is in flight. */
  async idle(): Promise<void> {
    while (this.#entries.size > 0) await Promise.allSettled([...this.#entries].map((e) => e.done));
  }

  /** Waits up to `graceMs` for everything to finish, then aborts what is left and waits for it to wind down. */
  async drain(clock: Clock, graceMs: number): Promise<void> {
    if (this.#entries.size === 0) return;
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = clock.setTimeout(resolve, graceMs);
    });
    await Promise.race([this.idle(), grace]);
    if (timer) clock.clearTimeout(timer);
    for (const entry of this.#entries) entry.controller.abort(new ShutdownError('Shutting down.'));
    await this.idle();
  }
}

/** Rejects with the signal's reason once it fires; for racing work against shutdown. */
export function whenAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}
