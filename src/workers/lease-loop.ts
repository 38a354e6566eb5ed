/**
 * The loop both workers run (replays, webhook deliveries): lease what is due
 * into the free slots and start each job in the background; look again at once
 * while leases keep filling slots and whenever a job finishes, otherwise after
 * the worker's idle delay (the next due time, capped at its poll). One lease
 * call at a time; `runOnce()` is the manual trigger tests drive with a
 * ManualClock.
 */
import type { Clock, Timer } from '../clock.ts';
import { InFlight } from '../engine/in-flight.ts';

export interface LeaseLoopOptions<Job> {
  clock: Clock;
  /** Jobs that may start now (0 when paused). */
  freeSlots(inFlight: number): number;
  /** Leases at most `limit` due jobs. */
  lease(limit: number): Promise<Job[]>;
  /** One job; `shutdown` fires when stop() gives up waiting for it. */
  run(job: Job, shutdown: AbortSignal): Promise<void>;
  /** Ms until the next look when nothing more could be leased. */
  idleDelay(): Promise<number>;
  /** Ms until the next look when the store could not be read. */
  pollIntervalMs: number;
  /**
   * Told of every failure nobody else awaits: a look that failed (`job`
   * undefined: the store could not be read; the loop tries again after
   * `pollIntervalMs`), or a job that threw.
   */
  onError(error: unknown, job?: Job): void;
  /** Let the process exit while only this loop's timer is pending. */
  unref?: boolean;
}

export class LeaseLoop<Job> {
  readonly #options: LeaseLoopOptions<Job>;
  readonly #inFlight = new InFlight();
  #timer: Timer | undefined;
  #timerAt = 0;
  #running = false;
  #leasing: Promise<number> | undefined;

  constructor(options: LeaseLoopOptions<Job>) {
    this.#options = options;
  }

  get running(): boolean {
    return this.#running;
  }

  /** Jobs in flight now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Starts the loop. Safe to call twice. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(0);
  }

  /** Look in `delayMs`, unless a look is already planned sooner. */
  wakeIn(delayMs: number): void {
    if (!this.#running) return;
    if (this.#timer && this.#timerAt <= this.#options.clock.now() + delayMs) return;
    this.#schedule(delayMs);
  }

  /** Leases as many due jobs as there are free slots and starts them; resolves with how many. */
  runOnce(): Promise<number> {
    this.#leasing ??= this.#leaseAndStart().finally(() => {
      this.#leasing = undefined;
    });
    return this.#leasing;
  }

  /** Resolves when no job is in flight. */
  idle(): Promise<void> {
    return this.#inFlight.idle();
  }

  /** Stops leasing, waits up to `graceMs` for jobs in flight, then aborts the rest. Safe to call twice. */
  async stop(graceMs: number): Promise<void> {
    this.#running = false;
    if (this.#timer) this.#options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    // Whoever started that lease (the timer's tick, or a runOnce caller) is told of its failure.
    if (this.#leasing) await Promise.allSettled([this.#leasing]);
    await this.#inFlight.drain(this.#options.clock, graceMs);
  }

  #schedule(ms: number): void {
    const { clock } = this.#options;
    if (this.#timer) clock.clearTimeout(this.#timer);
    this.#timerAt = clock.now() + ms;
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined;
      void this.#tick();
    }, ms);
    if (this.#options.unref) this.#timer.unref?.();
  }

  async #tick(): Promise<void> {
    if (!this.#running) return;
    let delay = this.#options.pollIntervalMs;
    try {
      const leased = await this.runOnce();
      delay =
        leased > 0 && this.#options.freeSlots(this.#inFlight.size) > 0 ? 0 : await this.#options.idleDelay();
    } catch (error) {
      // The store is unavailable: say so, and try again at the next poll.
      this.#options.onError(error);
    }
    // A wake-up asked for meanwhile (a job finished, a capture falls due) stands if it is sooner;
    // a later one must not push this look back (a capture's due time after an open period
    // would hold a route's probes until then).
    this.wakeIn(delay);
  }

  async #leaseAndStart(): Promise<number> {
    const free = this.#options.freeSlots(this.#inFlight.size);
    if (free <= 0) return 0;
    const leased = await this.#options.lease(free);
    for (const job of leased) {
      void this.#inFlight
        .track(
          (shutdown) => this.#options.run(job, shutdown),
          (error) => this.#options.onError(error, job),
        )
        .then(() => {
          if (this.#running) this.#schedule(0);
        });
    }
    return leased.length;
  }
}
