/** A `route_health` row (migration 016) as the port's StoredRouteHealth; the same columns in both adapters. */
import type { StoredRouteHealth } from './port.ts';

export function storedRouteHealthOf(row: Record<string, unknown>): StoredRouteHealth {
  return {
    state: row.state as StoredRouteHealth['state'],
    cause: row.cause === null ? null : (row.cause as 'trip' | 'retry-after'),
    since: Number(row.since),
    until: row.until === null ? null : Number(row.until),
  };
}
