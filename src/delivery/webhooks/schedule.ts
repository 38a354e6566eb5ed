/**
 * Deciding what a webhook attempt's outcome means and when to try again:
 * pure, no I/O, the random source injected (STYLE: deciding apart from acting).
 *
 * Status handling per Standard Webhooks (http-standards.md §4.1):
 * - 2xx: delivered.
 * - 410 Gone: the receiver is retired; the endpoint is disabled, no more attempts.
 * - 429, 502, 504: throttling; tried again on the schedule, no sooner than
 *   its `Retry-After` when it sends one.
 * - 3xx: a failure; the redirect is never followed.
 * - Everything else, a network error or a timeout: a failure, tried again on
 *   the schedule (`Retry-After`, e.g. on a 503, is honoured as a minimum).
 *
 * The schedule is Standard Webhooks' example (5 s, 5 min, 30 min, 2 h, 5 h,
 * 10 h, 14 h, 20 h, 24 h after the immediate first attempt: about three days in
 * all), each delay spread by ±`jitter` so that a receiver coming back is not
 * hit by every delivery at once.
 */

export interface WebhookSchedule {
  /** Delays before the 2nd, 3rd, … attempt; the last one repeats if maxAttempts asks for more. */
  delaysMs: readonly number[];
  /** Each delay is drawn uniformly from delay × [1 − jitter, 1 + jitter]. */
  jitter: number;
  /** Attempts in all, the first included; then the delivery has failed. */
  maxAttempts: number;
}

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** Standard Webhooks' example schedule, after the immediate first attempt. */
export const STANDARD_DELAYS_MS: readonly number[] = [
  5 * SECOND,
  5 * MINUTE,
  30 * MINUTE,
  2 * HOUR,
  5 * HOUR,
  10 * HOUR,
  14 * HOUR,
  20 * HOUR,
  24 * HOUR,
];

export const defaultSchedule: WebhookSchedule = {
  delaysMs: STANDARD_DELAYS_MS,
  jitter: 0.2,
  maxAttempts: STANDARD_DELAYS_MS.length + 1,
};

/** Statuses that mean "slow down" rather than "broken". */
const THROTTLE_STATUSES = new Set([429, 502, 504]);

/** What one attempt came to. */
export type DeliveryOutcome =
  | { kind: 'response'; status: number; retryAfterMs?: number }
  | {
      kind: 'error';
      message: string;
      timedOut: boolean;
      /** No later attempt can do better (the URL left the allow-list): fail now. */
      permanent?: boolean;
    };

export type DeliveryDecision =
  | { kind: 'delivered' }
  | { kind: 'retry'; delayMs: number; reason: string }
  | { kind: 'failed'; reason: string }
  | { kind: 'disabled'; reason: string };

/** The jittered delay before the attempt that follows `attemptsMade` attempts. */
export function scheduledDelay(
  schedule: WebhookSchedule,
  attemptsMade: number,
  random: () => number,
): number {
  const { delaysMs, jitter } = schedule;
  const base = delaysMs[Math.min(Math.max(0, attemptsMade - 1), delaysMs.length - 1)] ?? 0;
  return Math.round(base * (1 + jitter * (2 * random() - 1)));
}

/** Decides after the `attemptsMade`-th attempt (1 for the first). */
export function decideAfterDelivery(
  outcome: DeliveryOutcome,
  attemptsMade: number,
  schedule: WebhookSchedule,
  random: () => number = Math.random,
): DeliveryDecision {
  let reason: string;
  let retryAfterMs: number | undefined;
  if (outcome.kind === 'error') {
    reason = outcome.message;
    if (outcome.permanent) return { kind: 'failed', reason };
  } else {
    const { status } = outcome;
    if (status >= 200 && status < 300) return { kind: 'delivered' };
    if (status === 410) return { kind: 'disabled', reason: 'The receiver answered 410 Gone.' };
    retryAfterMs = outcome.retryAfterMs;
    reason =
      status >= 300 && status < 400
        ? `The receiver answered ${status}, a redirect; redirects are not followed.`
        : THROTTLE_STATUSES.has(status)
          ? `The receiver answered ${status}: throttled.`
          : `The receiver answered ${status}.`;
  }
  if (attemptsMade >= schedule.maxAttempts) {
    return { kind: 'failed', reason: `${reason} Gave up after ${attemptsMade} attempts.` };
  }
  const scheduled = scheduledDelay(schedule, attemptsMade, random);
  // Retry-After is a floor, capped at the schedule's longest delay so that no receiver parks a delivery for good.
  const ceiling = Math.max(...schedule.delaysMs);
  const floor = retryAfterMs === undefined ? 0 : Math.min(retryAfterMs, ceiling);
  return { kind: 'retry', delayMs: Math.max(scheduled, floor), reason };
}
