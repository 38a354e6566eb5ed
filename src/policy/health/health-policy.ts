/**
 * The knobs of a route's health policy. Defaults are in `routeDefaults.health`
 * (src/config/schema.ts), each documented there and in docs/policy.md.
 */
export interface Thresholds {
  /** Failed share of calls above which the rule fires (0..1). */
  errorRate: number;
  /** Share of calls at or over `slowCallMs` above which the rule fires (0..1). */
  slowRate: number;
  /** Latency percentile (ms) above which the rule fires. */
  latencyMs: number;
}

export interface HealthPolicy {
  windowMs: number;
  bucketMs: number;
  /** No rate or percentile rule fires on fewer finished calls than this. */
  minCalls: number;
  /** A call taking this long or longer is slow; an in-flight call this old (or past its budget) counts as hung. */
  slowCallMs: number;
  /** Which latency percentile the latency rule reads (e.g. 95 or 99). */
  latencyPercentile: number;
  /** Thresholds that trip sync → diverting. */
  trip: Thresholds;
  /** Stricter thresholds the probes must meet to revert probing → sync. */
  revert: Thresholds;
  /** This many calls in flight past `slowCallMs` or their budget trip at once, before they finish. */
  hungCalls: number;
  /** Static limit on sync calls in flight; past it requests are captured (load shedding). */
  maxConcurrency: number;
  /** Optional AIMD limit below `maxConcurrency`, driven by latency and errors. */
  adaptiveConcurrency: { enabled: boolean; min: number; initial: number };
  /** First open period; grows by `openMultiplier` per failed recovery, up to `maxOpenMs`, with ± `openJitter`. */
  openMs: number;
  maxOpenMs: number;
  openMultiplier: number;
  openJitter: number;
  /** After this long in sync without a trip, the open period steps back down once. */
  decayAfterMs: number;
  /** Share of live requests that try the sync path while probing. */
  probeShare: number;
  /** Probe results judged together. */
  probeCalls: number;
  /** While the route diverts or probes, one replay of its backlog probes the upstream this often. */
  probeIntervalMs: number;
  /** Least time in probing before a revert. */
  minProbingMs: number;
  /** After a revert, the sync share ramps from `probeShare` to 100% over this long. */
  rampMs: number;
  /** Share of healthy traffic sent down the async path on purpose (drills). */
  drillShare: number;
}
