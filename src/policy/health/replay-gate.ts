/**
 * How fast one route's backlog may be replayed, from its health: pure logic,
 * no I/O, time passed in. One gate per route and replay worker, so one failing
 * route never slows another's drain.
 *
 * Modes:
 * - **drain** — the route is healthy (`sync`), or a probe passed while it
 *   diverts or probes: replays run at the route's adaptive (AIMD) limit.
 * - **probe** — the route diverts or probes and no probe has passed yet: its
 *   replays act as probes, one at a time, one every `probeIntervalMs`, so the
 *   first replay reaches a recovered upstream within about that long, with or
 *   without live traffic. A probe that passes switches the route to drain (the
 *   caller then brings the route's due times forward).
 * - **paused** — the upstream asked for time (`Retry-After`), on a live call or
 *   a replay of this route: nothing until then.
 *
 * The health comes from the gateway's own machine, or, in a `spillway worker`
 * process, from the store, as a gateway last wrote it.
 */
import { AimdLimit } from './aimd-limit.ts';

/** A route's health as replay needs it: the machine's state, or a gateway's through the store. */
export interface RouteHealthView {
  state: 'sync' | 'diverting' | 'probing';
  cause: 'trip' | 'retry-after' | null;
  /** When the state began: a probe that passed unlocks the drain for this state only. */
  since: number;
  until: number | null;
  /** Probe results that passed so far in this probing round (live probes or replays). */
  probesPassed: number;
}

export type ReplayMode = 'drain' | 'probe' | 'paused';

export interface ReplayGateOptions {
  /** Replays of the route in flight at most (the AIMD limit's ceiling). */
  concurrency: number;
  /** The least time between two replay probes of the route. */
  probeIntervalMs: number;
}

export class ReplayGate {
  readonly #options: ReplayGateOptions;
  /** The drain rate adapts to the upstream: AIMD from replay latency and errors, within [1, concurrency]. */
  readonly #limit: AimdLimit;
  #inFlight = 0;
  #pausedUntil = 0;
  #lastProbeAt = Number.NEGATIVE_INFINITY;
  /** The `since` of the state in which a replay probe of ours passed. */
  #passedIn: number | undefined;
  #lastMode: ReplayMode = 'drain';

  constructor(options: ReplayGateOptions) {
    this.#options = options;
    const max = Math.max(1, options.concurrency);
    this.#limit = new AimdLimit({ min: 1, max, initial: Math.ceil(max / 2), backoff: 0.5 });
  }

  /** Replays allowed in flight in drain mode now. */
  get limit(): number {
    return Math.min(this.#limit.limit, this.#options.concurrency);
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  mode(view: RouteHealthView | undefined, now: number): ReplayMode {
    if (now < this.#pausedUntil) return 'paused';
    if (!view || view.state === 'sync') return 'drain';
    if (view.state === 'diverting' && view.cause === 'retry-after' && (view.until ?? 0) > now)
      return 'paused';
    if (this.#passedIn === view.since) return 'drain';
    if (view.state === 'probing' && view.probesPassed > 0) return 'drain';
    return 'probe';
  }

  /**
   * True once each time the route moves from probe (or a pause) to drain: the
   * upstream is back, so the caller makes the route's waiting operations due now.
   */
  enteredDrain(view: RouteHealthView | undefined, now: number): boolean {
    const mode = this.mode(view, now);
    const entered = mode === 'drain' && this.#lastMode !== 'drain';
    this.#lastMode = mode;
    return entered;
  }

  /** How many replays of the route may start now. */
  slots(view: RouteHealthView | undefined, now: number): number {
    switch (this.mode(view, now)) {
      case 'paused':
        return 0;
      case 'drain':
        return Math.max(0, this.limit - this.#inFlight);
      case 'probe':
        return this.#inFlight === 0 && now - this.#lastProbeAt >= this.#options.probeIntervalMs ? 1 : 0;
    }
  }

  /** Ms until `slots` may open without a replay finishing (a probe's turn, a pause's end), or undefined. */
  nextTurnIn(view: RouteHealthView | undefined, now: number): number | undefined {
    const mode = this.mode(view, now);
    if (mode === 'paused') {
      const until = Math.max(this.#pausedUntil, view?.cause === 'retry-after' ? (view.until ?? 0) : 0);
      return Math.max(0, until - now);
    }
    if (mode === 'probe' && this.#inFlight === 0)
      return Math.max(0, this.#lastProbeAt + this.#options.probeIntervalMs - now);
    return undefined;
  }

  /** A probe-mode lease was tried: the next waits its turn, whether or not it found a replay to send. */
  probed(now: number): void {
    this.#lastProbeAt = now;
  }

  /** A replay starts. */
  started(): void {
    this.#inFlight++;
  }

  /**
   * A replay ended. `passed`: neither failed nor slow. A probe that passed
   * unlocks the drain for the state it was sent in (`since`).
   */
  finished(passed: boolean, probe: { since: number } | undefined): void {
    this.#inFlight--;
    if (passed) this.#limit.good();
    else this.#limit.bad();
    if (probe && passed) this.#passedIn = probe.since;
  }

  /** A replay ended without an outcome (shutdown, refused before sending): only the slot is freed. */
  released(): void {
    this.#inFlight--;
  }

  /** The upstream answered a replay with Retry-After: this route waits until then. */
  pauseUntil(until: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, until);
  }
}
