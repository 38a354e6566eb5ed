/**
 * The results of one probing round, from the moment probing began: unlike the
 * sliding window, nothing falls out with time, so a route under light traffic
 * (a probe every few seconds) still gathers its `probeCalls` results and
 * reverts. Live probes and replays finished while probing both count.
 */
import { LatencyHistogram } from './histogram.ts';
import type { CallOutcome, WindowTotals } from './sliding-window.ts';

export class ProbeRound {
  readonly #slowCallMs: number;
  #totals: WindowTotals = { calls: 0, failures: 0, slow: 0, latency: new LatencyHistogram() };
  /** Results neither failed nor slow: the progress shown while probing. */
  #passed = 0;

  constructor(slowCallMs: number) {
    this.#slowCallMs = slowCallMs;
  }

  record(outcome: CallOutcome): void {
    const slow = outcome.durationMs >= this.#slowCallMs;
    const t = this.#totals;
    t.calls++;
    if (outcome.failed) t.failures++;
    if (slow) t.slow++;
    if (!outcome.failed && !slow) this.#passed++;
    t.latency.record(outcome.durationMs);
  }

  /** Everything recorded since the round began; read-only, valid until the next call. */
  get totals(): Readonly<WindowTotals> {
    return this.#totals;
  }

  get passed(): number {
    return this.#passed;
  }

  /** A new round starts empty. */
  clear(): void {
    this.#totals = { calls: 0, failures: 0, slow: 0, latency: new LatencyHistogram() };
    this.#passed = 0;
  }
}
