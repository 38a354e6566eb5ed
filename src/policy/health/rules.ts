/**
 * The rules that judge a route's signals, each a small strategy returning the
 * reason it fires (named after the rule, e.g. "error-rate 14% > 10%") or
 * undefined. The same rules trip with the trip thresholds and judge probes
 * with the stricter revert thresholds.
 */
import type { Thresholds } from './health-policy.ts';
import type { WindowTotals } from './sliding-window.ts';

export interface Signals {
  calls: number;
  errorRate: number;
  slowRate: number;
  /** The policy's latency percentile over the window, ms; undefined without calls. */
  latencyMs: number | undefined;
  /** Calls in flight past their budget or `slowCallMs`, whichever is shorter. */
  hung: number;
  inFlight: number;
}

export interface RuleContext {
  thresholds: Thresholds;
  minCalls: number;
  hungCalls: number;
  latencyPercentile: number;
  /** The shortest age past which the hung calls counted are hung (for the reason). */
  hungAfterMs: number;
}

export type Rule = (signals: Signals, ctx: RuleContext) => string | undefined;

const pct = (rate: number) => `${Math.round(rate * 100)}%`;

export const hungCallsRule: Rule = (s, ctx) =>
  s.hung >= ctx.hungCalls
    ? `hung-calls ${s.hung} in flight over ${ctx.hungAfterMs} ms ≥ ${ctx.hungCalls}`
    : undefined;

export const errorRateRule: Rule = (s, ctx) =>
  s.calls >= ctx.minCalls && s.errorRate > ctx.thresholds.errorRate
    ? `error-rate ${pct(s.errorRate)} > ${pct(ctx.thresholds.errorRate)}`
    : undefined;

export const slowRateRule: Rule = (s, ctx) =>
  s.calls >= ctx.minCalls && s.slowRate > ctx.thresholds.slowRate
    ? `slow-rate ${pct(s.slowRate)} > ${pct(ctx.thresholds.slowRate)}`
    : undefined;

export const latencyRule: Rule = (s, ctx) =>
  s.calls >= ctx.minCalls && s.latencyMs !== undefined && s.latencyMs > ctx.thresholds.latencyMs
    ? `latency p${ctx.latencyPercentile} ${s.latencyMs} ms > ${ctx.thresholds.latencyMs} ms`
    : undefined;

export const allRules: readonly Rule[] = [hungCallsRule, errorRateRule, slowRateRule, latencyRule];

/** The reason of the first rule that fires, or undefined. */
export function judge(
  signals: Signals,
  ctx: RuleContext,
  rules: readonly Rule[] = allRules,
): string | undefined {
  for (const rule of rules) {
    const reason = rule(signals, ctx);
    if (reason) return reason;
  }
  return undefined;
}

export function signalsOf(totals: WindowTotals, percentile: number, hung: number, inFlight: number): Signals {
  return {
    calls: totals.calls,
    errorRate: totals.calls === 0 ? 0 : totals.failures / totals.calls,
    slowRate: totals.calls === 0 ? 0 : totals.slow / totals.calls,
    latencyMs: totals.latency.percentile(percentile),
    hung,
    inFlight,
  };
}
