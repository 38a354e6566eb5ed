/**
 * When to try again: exponential backoff with full jitter (the delay is drawn
 * uniformly from [0, min(max, initial · multiplier^(n-1))]), which spreads a
 * backlog's retries instead of synchronising them into waves.
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  multiplier: number;
}

/** Delay before the attempt that follows `attemptsMade` attempts. */
export function backoffDelay(policy: BackoffPolicy, attemptsMade: number, random: () => number): number {
  const exponent = Math.max(0, attemptsMade - 1);
  const ceiling = Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** exponent);
  return Math.floor(random() * ceiling);
}
