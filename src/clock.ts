/**
 * Time, injected. Everything that schedules (backoff, leases, budgets, polling)
 * takes a Clock so tests can drive time without sleeping. Node's wall clock is
 * the source of truth for every stored time on the embedded store
 * (`next_attempt_at`, `lease_expires_at`): there is one process per file.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(timer: Timer): void;
}

export interface Timer {
  unref?(): unknown;
  /**
   * Optional: starts the timer's delay afresh from now, and fires it again if
   * it has fired (Node's `Timeout.refresh()`); a cleared timer stays cleared.
   * Cheaper than clearing and setting a new one, for a timer moved often.
   */
  refresh?(): unknown;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

/** Resolves after `ms` on the given clock; rejects with the signal's reason when aborted. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clock.clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
