/**
 * Invariant 2 of the brief (RFC 9110 §9.2.2): a request whose earlier attempt
 * may have reached the upstream is sent again only when doing so cannot cause a
 * second effect — the method is idempotent, or the route declares that the
 * upstream honours the Idempotency-Key Spillway forwards on every attempt.
 */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export function isResendSafe(method: string, honoursIdempotencyKey: boolean): boolean {
  return honoursIdempotencyKey || IDEMPOTENT_METHODS.has(method);
}
