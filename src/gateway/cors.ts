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
  'Cache-Status',
  'Age',
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

/**
 * The header lines for a stored upstream answer that Spillway sends again (a
 * result, an Idempotency-Key replay) with its own headers added. When those
 * carry CORS (an allowed origin), they replace the stored answer's
 * `Access-Control-*`: browsers refuse two `Access-Control-Allow-Origin` values.
 * For any other origin the stored answer goes out as it was.
 */
export function storedWithOwnHeaders(stored: [string, string][], own: Record<string, string>): string[] {
  const corsApplies = 'access-control-allow-origin' in own;
  const kept = corsApplies
    ? stored.filter(([name]) => !name.toLowerCase().startsWith('access-control-'))
    : stored;
  return [...kept.flat(), ...Object.entries(own).flat()];
}
