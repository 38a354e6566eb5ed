/**
 * Outcomes of finished calls over a time-based sliding window made of
 * buckets: old buckets fall out as time moves, so the signals describe the
 * last `windowMs`, not the whole life of the process.
 */
import { LatencyHistogram } from './histogram.ts';

export interface CallOutcome {
  /** Counted as a failure by the route's classification (connect error, timeout, failover status). */
  failed: boolean;
  durationMs: number;
}

interface Bucket extends WindowTotals {
  start: number;
}

export interface WindowTotals {
  calls: number;
  failures: number;
  slow: number;
  latency: LatencyHistogram;
}

export class SlidingWindow {
  readonly #buckets: Bucket[] = [];
  readonly #bucketMs: number;
  readonly #windowMs: number;
  readonly #slowCallMs: number;
  /** Running totals over the live buckets: kept up to date on record and eviction, so reading is O(1). */
  #sum: WindowTotals = emptyTotals();

  constructor(windowMs: number, bucketMs: number, slowCallMs: number) {
    this.#windowMs = windowMs;
    this.#bucketMs = bucketMs;
    this.#slowCallMs = slowCallMs;
  }

  record(outcome: CallOutcome, now: number): void {
    this.#evict(now);
    const start = now - (now % this.#bucketMs);
    let bucket = this.#buckets.at(-1);
    if (!bucket || bucket.start !== start) {
      bucket = { start, ...emptyTotals() };
      this.#buckets.push(bucket);
    }
    const slow = outcome.durationMs >= this.#slowCallMs;
    // Twice by hand rather than a loop over [bucket, sum]: this runs once per sync request.
    add(bucket, outcome, slow);
    add(this.#sum, outcome, slow);
  }

  /** The totals over the last `windowMs`; read-only, valid until the next call. */
  totals(now: number): Readonly<WindowTotals> {
    this.#evict(now);
    return this.#sum;
  }

  /** Forgets everything: a new state starts with a clean view. */
  clear(): void {
    this.#buckets.length = 0;
    this.#sum = emptyTotals();
  }

  #evict(now: number): void {
    while (this.#buckets.length > 0 && this.#buckets[0]!.start + this.#bucketMs <= now - this.#windowMs) {
      const old = this.#buckets.shift()!;
      this.#sum.calls -= old.calls;
      this.#sum.failures -= old.failures;
      this.#sum.slow -= old.slow;
      this.#sum.latency.subtract(old.latency);
    }
  }
}

function add(totals: WindowTotals, outcome: CallOutcome, slow: boolean): void {
  totals.calls++;
  if (outcome.failed) totals.failures++;
  if (slow) totals.slow++;
  totals.latency.record(outcome.durationMs);
}

function emptyTotals(): WindowTotals {
  return { calls: 0, failures: 0, slow: 0, latency: new LatencyHistogram() };
}
