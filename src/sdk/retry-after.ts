/**
 * `Retry-After` (RFC 9110 §10.2.3): a number of whole seconds, or an
 * HTTP-date. Answers the delay in milliseconds from `now`, never negative, or
 * `undefined` when the field is absent or not understood.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  now: number = Date.now(),
): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^[0-9]+$/.test(text)) return Number(text) * 1_000;
  if (!/[a-z]/i.test(text)) return undefined; // a date has a day or month name; "1.5" or "-1" is not one
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
