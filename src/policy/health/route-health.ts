/**
 * One route's health state machine: pure logic, no I/O; time comes in as
 * `now`, randomness as `random`. It decides, per request, whether to try the
 * sync path or divert to capture, and moves between states on outcomes and on
 * `tick(now)` (driven by a timer, so transitions happen on time even without
 * traffic).
 *
 * States:
 * - **sync** — requests try the upstream. Right after a revert the sync share
 *   ramps up from `probeShare` to 100% over `rampMs`; the rest is captured.
 *   Any trip rule firing (with the trip thresholds) moves to diverting.
 * - **diverting** — every request is captured at once (a 202 in milliseconds),
 *   for an open period that grows with each failed recovery (with jitter) and
 *   decays after sustained health, or until an upstream Retry-After.
 * - **probing** — a share of live requests tries the sync path; their results
 *   and those of replays finished meanwhile count from the start of probing
 *   (not in the sliding window, so light traffic still gets there), and once
 *   `probeCalls` of them are in they are judged together with the stricter
 *   revert thresholds. Pass (and `minProbingMs` spent) → sync, ramping. Fail →
 *   diverting, longer.
 *
 * A call in flight past its own budget or `slowCallMs`, whichever is shorter,
 * is hung: a black hole trips after about one budget, whatever budget the
 * clients ask for.
 * Operator overrides (`forced-async`, `forced-sync`) sit on top: the machine
 * keeps running underneath, and its view is shown, but the override decides.
 */
import { AimdLimit } from './aimd-limit.ts';
import type { HealthPolicy } from './health-policy.ts';
import { ProbeRound } from './probe-round.ts';
import type { RouteHealthView } from './replay-gate.ts';
import { judge, type RuleContext, type Signals, signalsOf } from './rules.ts';
import { type CallOutcome, SlidingWindow } from './sliding-window.ts';

export type HealthState =
  | { kind: 'sync'; since: number; rampUntil: number | null }
  | { kind: 'diverting'; since: number; until: number; reason: string; cause: 'trip' | 'retry-after' }
  | { kind: 'probing'; since: number; reason: string };

export type Override = 'forced-async' | 'forced-sync';
export type StateName = HealthState['kind'] | Override;

export type HealthEventType = 'health:trip' | 'health:probe' | 'health:revert' | 'health:override';
export interface HealthEvent {
  type: HealthEventType;
  route: string;
  at: number;
  reason: string;
}

/** The verdict for one request. A sync admission carries the token to finish it with. */
export type Admission =
  | { path: 'sync'; token: CallToken; probe: boolean }
  | { path: 'divert'; reason: string; drill: boolean; until?: number };

export interface CallToken {
  readonly startedAt: number;
  readonly probe: boolean;
  /** In flight this long, the call is hung: its budget or `slowCallMs`, whichever is shorter. */
  readonly hungAfterMs: number;
}

export interface FinishedCall extends CallOutcome {
  /** The upstream's Retry-After on a 429/503, ms: divert until then. */
  retryAfterMs?: number;
}

export interface HealthSnapshot {
  route: string;
  state: StateName;
  since: number;
  reason: string;
  trips: number;
  signals: Signals & {
    concurrencyLimit: number;
    syncShare: number;
    openMs: number;
    drills: number;
    replay: { calls: number; errorRate: number };
  };
}

export class RouteHealth {
  readonly route: string;
  readonly #policy: HealthPolicy;
  readonly #random: () => number;
  readonly #emit: (event: HealthEvent) => void;
  readonly #window: SlidingWindow;
  readonly #probes: ProbeRound;
  readonly #replays: SlidingWindow;
  readonly #inFlight = new Set<CallToken>();
  readonly #adaptive: AimdLimit | undefined;
  #state: HealthState;
  #override: Override | null = null;
  #overrideSince = 0;
  #reason = 'started';
  #trips = 0;
  #drills = 0;
  /** Failed recoveries not yet decayed: the exponent of the open period. */
  #failedRecoveries = 0;
  #lastOpenMs: number;
  #healthySince: number;

  constructor(
    route: string,
    policy: HealthPolicy,
    now: number,
    emit: (e: HealthEvent) => void,
    random = Math.random,
  ) {
    this.route = route;
    this.#policy = policy;
    this.#emit = emit;
    this.#random = random;
    this.#window = new SlidingWindow(policy.windowMs, policy.bucketMs, policy.slowCallMs);
    this.#probes = new ProbeRound(policy.slowCallMs);
    this.#replays = new SlidingWindow(policy.windowMs, policy.bucketMs, policy.slowCallMs);
    const { adaptiveConcurrency: a } = policy;
    this.#adaptive = a.enabled
      ? new AimdLimit({ min: a.min, max: policy.maxConcurrency, initial: a.initial, backoff: 0.9 })
      : undefined;
    this.#state = { kind: 'sync', since: now, rampUntil: null };
    this.#lastOpenMs = policy.openMs;
    this.#healthySince = now;
  }

  get state(): HealthState {
    return this.#state;
  }

  get override(): Override | null {
    return this.#override;
  }

  get trips(): number {
    return this.#trips;
  }

  /**
   * Decides this request's path. A sync admission must be finished with
   * `finish`. `budgetMs`: how long its client waits; past it the call counts as hung.
   * `work` false: the request is not work (a CORS preflight): never drilled, since a drill would
   * exercise nothing, and never a probe, since the upstream's answer to it (often from a CORS
   * layer in front of the handlers) says nothing of whether the upstream can do the work again.
   */
  admit(now: number, budgetMs: number = Number.POSITIVE_INFINITY, work = true): Admission {
    // Only the cheap, time-driven step here: rules are judged when calls finish and on the timer's tick.
    if (this.#state.kind === 'diverting' && now >= this.#state.until)
      this.#toProbing(now, this.#state.reason);
    const s = this.#state;
    if (this.#override === 'forced-async')
      return { path: 'divert', reason: 'override forced-async', drill: false };
    if (this.#override !== 'forced-sync') {
      if (s.kind === 'diverting') {
        return { path: 'divert', reason: `diverting: ${s.reason}`, drill: false, until: s.until };
      }
      if (s.kind === 'probing') {
        const probing = [...this.#inFlight].filter((t) => t.probe).length;
        if (!work || probing >= this.#policy.probeCalls || this.#random() >= this.#policy.probeShare) {
          return { path: 'divert', reason: `probing: ${this.#probeProgress()}`, drill: false };
        }
        return this.#start(now, true, budgetMs);
      }
      const share = this.#syncShare(now);
      if (share < 1 && this.#random() >= share)
        return { path: 'divert', reason: 'ramp after revert', drill: false };
    }
    const limit = this.#concurrencyLimit();
    if (this.#inFlight.size >= limit) {
      return {
        path: 'divert',
        reason: `shed: ${this.#inFlight.size} in flight ≥ limit ${limit}`,
        drill: false,
      };
    }
    if (
      work &&
      this.#override === null &&
      this.#policy.drillShare > 0 &&
      this.#random() < this.#policy.drillShare
    ) {
      this.#drills++;
      return { path: 'divert', reason: 'drill', drill: true };
    }
    return this.#start(now, false, budgetMs);
  }

  /** Tracks a sync call that may not be diverted (its route or its client forbids async); it still feeds the signals. */
  observe(now: number): CallToken {
    const token: CallToken = { startedAt: now, probe: false, hungAfterMs: this.#policy.slowCallMs };
    this.#inFlight.add(token);
    return token;
  }

  /** Records a sync call's outcome (including an adopted call that finished after its client got a 202). */
  finish(token: CallToken, outcome: FinishedCall, now: number): void {
    if (!this.#inFlight.delete(token)) return;
    const bad = outcome.failed || outcome.durationMs >= this.#policy.slowCallMs;
    if (bad) this.#adaptive?.bad();
    else this.#adaptive?.good();
    if (token.probe && this.#state.kind === 'probing') this.#probes.record(outcome);
    else this.#window.record(outcome, now);
    if (outcome.retryAfterMs !== undefined && this.#state.kind !== 'diverting') {
      this.#divert(
        now,
        now + outcome.retryAfterMs,
        `retry-after ${Math.ceil(outcome.retryAfterMs / 1000)} s`,
        'retry-after',
      );
      return;
    }
    this.tick(now);
  }

  /**
   * Replays feed a separate view: a draining backlog does not trip the route
   * by itself. While probing, they are probe results too, so a route with
   * little or no live traffic comes back on its own backlog. While diverting
   * after a first trip, a replay probe that passes ends the open period early
   * (the upstream is back) and is the round's first result; after a failed
   * recovery it only starts the drain (the workers' ReplayGate), so a
   * flapping upstream still makes live traffic wait longer and longer.
   */
  replayFinished(outcome: CallOutcome, now: number): void {
    this.#replays.record(outcome, now);
    const s = this.#state;
    const passed = !outcome.failed && outcome.durationMs < this.#policy.slowCallMs;
    if (s.kind === 'diverting' && s.cause === 'trip' && passed && this.#failedRecoveries === 0)
      this.#toProbing(now, s.reason, 'a replay probe passed');
    if (this.#state.kind !== 'probing') return;
    this.#probes.record(outcome);
    this.tick(now);
  }

  /** The state as replay needs it (src/policy/health/replay-gate.ts): the machine's, whatever the override. */
  replayView(): RouteHealthView {
    const s = this.#state;
    return {
      state: s.kind,
      cause: s.kind === 'diverting' ? s.cause : null,
      since: s.since,
      until: s.kind === 'diverting' ? s.until : null,
      probesPassed: s.kind === 'probing' ? this.#probes.passed : 0,
    };
  }

  setOverride(override: Override | null, now: number): void {
    if (override === this.#override) return;
    this.#override = override;
    this.#overrideSince = now;
    this.#emit({ type: 'health:override', route: this.route, at: now, reason: override ?? 'none' });
  }

  /** Moves the machine along: open periods end, hung calls trip, judged probes revert or re-open. */
  tick(now: number): void {
    const s = this.#state;
    if (s.kind === 'diverting') {
      if (now >= s.until) this.#toProbing(now, s.reason);
      return;
    }
    if (s.kind === 'probing') {
      const reason = this.#judge(now, true);
      if (reason) {
        this.#failedRecoveries++;
        this.#divert(now, now + this.#openPeriod(), `probe failed: ${reason}`, 'trip');
      } else if (
        this.#probes.totals.calls >= this.#policy.probeCalls &&
        now - s.since >= this.#policy.minProbingMs
      ) {
        this.#state = { kind: 'sync', since: now, rampUntil: now + this.#policy.rampMs };
        this.#reason = `probes passed (${this.#policy.probeCalls} judged)`;
        this.#healthySince = now;
        this.#window.clear();
        this.#emit({ type: 'health:revert', route: this.route, at: now, reason: this.#reason });
      }
      return;
    }
    const reason = this.#judge(now, false);
    if (reason) {
      // A revert that does not last decayAfterMs was a failed recovery too: without this, an
      // upstream flapping slower than the open period would trip once per failing phase.
      if (s.rampUntil !== null && now - s.since < this.#policy.decayAfterMs) this.#failedRecoveries++;
      this.#divert(now, now + this.#openPeriod(), reason, 'trip');
      return;
    }
    // Sustained health pays back one failed recovery per decay period.
    if (this.#failedRecoveries > 0 && now - this.#healthySince >= this.#policy.decayAfterMs) {
      this.#failedRecoveries--;
      this.#healthySince = now;
    }
  }

  /** When the machine next needs a tick even without traffic (open period end), if ever. */
  nextDeadline(): number | undefined {
    return this.#state.kind === 'diverting' ? this.#state.until : undefined;
  }

  snapshot(now: number): HealthSnapshot {
    const s = this.#state;
    const replay = this.#replays.totals(now);
    const state: StateName = this.#override ?? s.kind;
    return {
      route: this.route,
      state,
      since: this.#override ? this.#overrideSince : s.since,
      reason: this.#override
        ? `override ${this.#override}`
        : s.kind === 'sync'
          ? this.#reason
          : s.kind === 'probing'
            ? this.#probeProgress()
            : s.reason,
      trips: this.#trips,
      signals: {
        ...(s.kind === 'probing' ? this.#probeSignals(now) : this.#signals(now)),
        concurrencyLimit: this.#concurrencyLimit(),
        syncShare: this.#syncShare(now),
        openMs: this.#lastOpenMs,
        drills: this.#drills,
        replay: { calls: replay.calls, errorRate: replay.calls === 0 ? 0 : replay.failures / replay.calls },
      },
    };
  }

  #start(now: number, probe: boolean, budgetMs: number): Admission {
    const token: CallToken = {
      startedAt: now,
      probe,
      hungAfterMs: Math.min(this.#policy.slowCallMs, budgetMs),
    };
    this.#inFlight.add(token);
    return { path: 'sync', token, probe };
  }

  #divert(now: number, until: number, reason: string, cause: 'trip' | 'retry-after'): void {
    if (this.#state.kind === 'sync') this.#trips++; // trips count sync → diverting only
    this.#state = { kind: 'diverting', since: now, until, reason, cause };
    this.#probes.clear();
    this.#emit({ type: 'health:trip', route: this.route, at: now, reason });
  }

  #toProbing(now: number, reason: string, why = 'open period over'): void {
    this.#state = { kind: 'probing', since: now, reason };
    this.#probes.clear();
    this.#emit({ type: 'health:probe', route: this.route, at: now, reason: `${why} after ${reason}` });
  }

  #openPeriod(): number {
    const p = this.#policy;
    const base = Math.min(p.maxOpenMs, p.openMs * p.openMultiplier ** this.#failedRecoveries);
    this.#lastOpenMs = Math.round(base * (1 + p.openJitter * (2 * this.#random() - 1)));
    return this.#lastOpenMs;
  }

  #syncShare(now: number): number {
    const s = this.#state;
    if (s.kind !== 'sync') return s.kind === 'probing' ? this.#policy.probeShare : 0;
    if (s.rampUntil === null || now >= s.rampUntil) return 1;
    const progress = (now - s.since) / (s.rampUntil - s.since);
    return this.#policy.probeShare + (1 - this.#policy.probeShare) * progress;
  }

  #concurrencyLimit(): number {
    return this.#adaptive
      ? Math.min(this.#adaptive.limit, this.#policy.maxConcurrency)
      : this.#policy.maxConcurrency;
  }

  /** "2/5 probes passed": the round's progress, shown as the probing reason. */
  #probeProgress(): string {
    return `${this.#probes.passed}/${this.#policy.probeCalls} probes passed`;
  }

  /** Calls (probes or not) in flight past their hung age, and the shortest such age among them. */
  #hung(now: number, probes: boolean): { n: number; overMs: number } {
    let n = 0;
    let overMs = this.#policy.slowCallMs;
    for (const t of this.#inFlight) {
      if (t.probe !== probes || now - t.startedAt < t.hungAfterMs) continue;
      n++;
      overMs = Math.min(overMs, t.hungAfterMs);
    }
    return { n, overMs };
  }

  #signals(now: number, hung = this.#hung(now, false)): Signals {
    return signalsOf(this.#window.totals(now), this.#policy.latencyPercentile, hung.n, this.#inFlight.size);
  }

  #probeSignals(now: number, hung = this.#hung(now, true)): Signals {
    return signalsOf(this.#probes.totals, this.#policy.latencyPercentile, hung.n, this.#inFlight.size);
  }

  /** The first rule that fires: in sync with the trip thresholds, while probing with the revert ones. */
  #judge(now: number, probing: boolean): string | undefined {
    const p = this.#policy;
    const hung = this.#hung(now, probing);
    const signals = probing ? this.#probeSignals(now, hung) : this.#signals(now, hung);
    // A hung probe fails the round at once; in sync, `hungCalls` of them trip.
    const ctx: RuleContext = probing
      ? {
          thresholds: p.revert,
          minCalls: p.probeCalls,
          hungCalls: 1,
          hungAfterMs: hung.overMs,
          latencyPercentile: p.latencyPercentile,
        }
      : {
          thresholds: p.trip,
          minCalls: p.minCalls,
          hungCalls: p.hungCalls,
          hungAfterMs: hung.overMs,
          latencyPercentile: p.latencyPercentile,
        };
    return judge(signals, ctx);
  }
}
