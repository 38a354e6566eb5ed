/**
 * Leases of operations: how long one lasts for a route, and the heartbeat
 * that extends it while its attempt runs (BullMQ's lock renewal).
 *
 * A lease is kept short and extended while its holder is alive, rather than
 * made long enough for the slowest attempt: a crashed holder's operation is
 * recovered after about one lease, not after the longest attempt any route
 * allows. Each extension is fenced by the lease's token, so a holder whose
 * lease was handed back or taken over learns it at the next beat and never
 * revives it.
 */
import type { Clock, Timer } from '../clock.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import type { OperationQueue } from '../store/port.ts';

/** Extra time a lease outlives its attempt's time limit, so it never expires under a live attempt. */
export const LEASE_MARGIN_MS = 5_000;
/** A lease covers at most this much of an attempt before its first heartbeat must extend it. */
const LEASE_SLICE_MS = 15_000;
/** Beats per lease: two may be lost (a store blip) before the lease runs out under a live attempt. */
const BEATS_PER_LEASE = 3;

/** How long a lease of the route's operations lasts (and each heartbeat extends it by). */
export const leaseMsFor = (route: Pick<RoutePolicy, 'attemptTimeoutMs'>): number =>
  Math.min(route.attemptTimeoutMs, LEASE_SLICE_MS) + LEASE_MARGIN_MS;

export interface HeldLease {
  /** The attempt is over: stop extending the lease. Safe to call twice. */
  stop(): void;
}

/**
 * Extends the lease `token` on operation `id` every third of `leaseMs` until
 * stopped. A beat the store refuses (the lease is gone) ends the heartbeat:
 * the holder's final write will be refused as well. A beat that fails (store
 * unavailable) is left to the next one.
 */
export function holdLease(
  store: OperationQueue,
  clock: Clock,
  lease: { id: string; token: string; leaseMs: number },
): HeldLease {
  let timer: Timer | undefined;
  let stopped = false;
  const beat = () => {
    timer = undefined;
    if (stopped) return;
    store.extendLease(lease.id, lease.token, clock.now() + lease.leaseMs).then(
      (held) => {
        if (held) schedule();
      },
      // Unavailable: this beat is lost; the lease still has two beats' time left.
      () => schedule(),
    );
  };
  const schedule = () => {
    if (stopped) return;
    timer = clock.setTimeout(beat, Math.max(1, Math.floor(lease.leaseMs / BEATS_PER_LEASE)));
    timer.unref?.();
  };
  schedule();
  return {
    stop: () => {
      stopped = true;
      if (timer) clock.clearTimeout(timer);
      timer = undefined;
    },
  };
}
