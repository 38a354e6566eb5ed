/**
 * CORS for the answers Spillway writes itself: the operations API, and on
 * proxied routes the 202, its problems and its Idempotency-Key replays (the
 * upstream's own answers carry the upstream's CORS headers, untouched). Only
 * origins listed in `corsOrigins` get any; browsers need them to read a 202's
 * Operation-Location from another origin.
 */

/** Response headers a browser script may read: the ones that carry the async contract. */
const EXPOSED = [
  'Location',
  'Operation-Location',
  'Retry-After',
  'Preference-Applied',
  'Spillway-Failover-Reason',
  'Idempotent-Replayed',
].join(', ');

/** CORS for an allowed browser origin (exact match, credentials allowed); nothing for any other. */
export function corsHeaders(
  origin: string | undefined,
  allowed: ReadonlySet<string>,
): Record<string, string> {
  if (origin === undefined || !allowed.has(origin)) return {};
  return {
    'access-control-allow-origin': origin,
    'access-control-allow-credentials': 'true',
    'access-control-expose-headers': EXPOSED,
    vary: 'Origin',
  };
}
