/**
 * GET /api/health: each route's health state and signals (the policy's view,
 * local to this process), with what the store says of it for every process:
 * its backlog, its dead letters and whether its replay is paused.
 */
import type { HealthMonitor } from '../../policy/health/health-monitor.ts';
import type { RoutePolicy } from '../../policy/route-policy.ts';
import type { OperationQueue, RouteControls } from '../../store/port.ts';

export async function healthView(
  health: HealthMonitor,
  store: Pick<OperationQueue, 'routeCounts'> & Pick<RouteControls, 'pausedReplays'>,
  routes: readonly RoutePolicy[],
) {
  const [counts, paused] = await Promise.all([store.routeCounts(), store.pausedReplays()]);
  const windowOf = new Map(routes.map((r) => [r.name, r.health.windowMs]));
  const totals = { backlog: 0, deadLettered: 0 };
  for (const c of Object.values(counts)) {
    totals.backlog += c.backlog;
    totals.deadLettered += c.deadLettered;
  }
  return {
    routes: health.snapshot().map((s) => {
      const pausedAt = paused[s.route];
      return {
        ...s,
        since: new Date(s.since).toISOString(),
        /** The signals' sliding window: `signals.replay.calls` were made within it. */
        windowMs: windowOf.get(s.route),
        backlog: counts[s.route]?.backlog ?? 0,
        deadLettered: counts[s.route]?.deadLettered ?? 0,
        replay: pausedAt === undefined ? 'running' : 'paused',
        ...(pausedAt === undefined ? {} : { replayPausedDateTime: new Date(pausedAt).toISOString() }),
      };
    }),
    /** Every route's in the store, those no longer configured included. */
    totals,
  };
}
