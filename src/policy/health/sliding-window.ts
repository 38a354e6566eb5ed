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

interface Bucket {
  start: number;
  calls: number;
  failures: number;
  slow: number;
  latency: LatencyHistogram;
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

  constructor(windowMs: number, bucketMs: number, slowCallMs: number) {
    this.#windowMs = windowMs;
    this.#bucketMs = bucketMs;
    this.#slowCallMs = slowCallMs;
  }

  record(outcome: CallOutcome, now: number): void {
    const start = now - (now % this.#bucketMs);
    let bucket = this.#buckets.at(-1);
    if (!bucket || bucket.start !== start) {
      bucket = { start, calls: 0, failures: 0, slow: 0, latency: new LatencyHistogram() };
      this.#buckets.push(bucket);
    }
    bucket.calls++;
    if (outcome.failed) bucket.failures++;
    if (outcome.durationMs >= this.#slowCallMs) bucket.slow++;
    bucket.latency.record(outcome.durationMs);
    this.#evict(now);
  }

  totals(now: number): WindowTotals {
    this.#evict(now);
    const totals: WindowTotals = { calls: 0, failures: 0, slow: 0, latency: new LatencyHistogram() };
    for (const bucket of this.#buckets) {
      totals.calls += bucket.calls;
      totals.failures += bucket.failures;
      totals.slow += bucket.slow;
      totals.latency.add(bucket.latency);
    }
    return totals;
  }

  /** Forgets everything: a new state starts with a clean view. */
  clear(): void {
    this.#buckets.length = 0;
  }

  #evict(now: number): void {
    while (this.#buckets.length > 0 && this.#buckets[0]!.start + this.#bucketMs <= now - this.#windowMs) {
      this.#buckets.shift();
    }
  }
}
