/**
 * `GET /_spillway/operations/{id}/deliveries`: an operation's webhook
 * deliveries and every attempt, for the client that created it to see why its
 * webhook did or did not arrive (http-standards.md §4.3: "keep delivery
 * attempts inspectable").
 *
 * What a client may see: everything about its own callback; of the operator's
 * subscriptions only the name, state and attempt statuses, never their URL or
 * what their receiver answered, which belong to the operator.
 */
import type { WebhookAttempt, WebhookDelivery } from '../../store/port.ts';
import { CALLBACK_ENDPOINT, webhookIdOf } from './message.ts';

export interface DeliveryView {
  webhookId: string;
  /** The CloudEvent's id, `<operation id>:<seq>`. */
  eventId: string;
  /** "callback" (`Spillway-Callback`) or a subscription's name. */
  endpoint: string;
  /** The callback URL; absent for subscriptions. */
  url?: string;
  state: WebhookDelivery['state'];
  attempts: number;
  /** When the next attempt is due, while pending. */
  nextAttemptDateTime?: string;
  lastError: string | null;
  createdDateTime: string;
  attemptLog: Array<{
    attempt: number;
    dateTime: string;
    status: number | null;
    error: string | null;
    latencyMs: number;
    responseSnippet?: string | null;
  }>;
}

export function deliveriesView(
  operationId: string,
  deliveries: ReadonlyArray<WebhookDelivery & { attemptLog: WebhookAttempt[] }>,
): { operationId: string; deliveries: DeliveryView[] } {
  return {
    operationId,
    deliveries: deliveries.map((d) => {
      const own = d.endpoint === CALLBACK_ENDPOINT;
      return {
        webhookId: webhookIdOf(d.operationId, d.seq, d.endpoint),
        eventId: `${d.operationId}:${d.seq}`, // as cloud-event.ts's eventId
        endpoint: d.endpoint,
        ...(own ? { url: d.url } : {}),
        state: d.state,
        attempts: d.attempts,
        ...(d.state === 'pending' ? { nextAttemptDateTime: new Date(d.nextAttemptAt).toISOString() } : {}),
        lastError: own
          ? d.lastError
          : d.lastError && 'The subscription did not accept it; see the gateway log.',
        createdDateTime: new Date(d.createdAt).toISOString(),
        attemptLog: d.attemptLog.map((a) => ({
          attempt: a.attempt,
          dateTime: new Date(a.at).toISOString(),
          status: a.status,
          error: own ? a.error : a.error && 'not delivered',
          latencyMs: a.latencyMs,
          ...(own ? { responseSnippet: a.responseSnippet } : {}),
        })),
      };
    }),
  };
}
