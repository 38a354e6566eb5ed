/**
 * What a webhook carries: the CloudEvent of the operation's terminal event
 * (`toCloudEvent`, the same envelope as SSE and WebSocket), serialised once;
 * these bytes are signed and sent on every attempt.
 *
 * The `webhook-id` is `msg_<operation id>_<seq>_<endpoint>`: stable across
 * retries and across processes (it is derived, not stored), unique per event
 * and endpoint, and made of `[A-Za-z0-9_-]` only, as Standard Webhooks asks
 * (no `.`, which separates the signed fields). It differs from the
 * CloudEvent's `id` (`<operation id>:<seq>`, the same on every channel),
 * whose `:` a webhook-id may not hold.
 */
import type { OperationEvent } from '../../store/port.ts';
import { toCloudEvent } from '../cloud-event.ts';
import type { WebhookMessage } from './sender.ts';

/** The endpoint name of a per-operation callback (`Spillway-Callback`); subscriptions use their own names. */
export const CALLBACK_ENDPOINT = 'callback';

/** Subscription names: they end up in webhook-ids. */
export const ENDPOINT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export const webhookIdOf = (operationId: string, seq: number, endpoint: string): string =>
  `msg_${operationId}_${seq}_${endpoint}`;

export function webhookMessage(
  event: OperationEvent,
  endpoint: string,
  publicUrl: string,
  trace: { traceparent: string | null; tracestate: string | null },
): WebhookMessage {
  const body = new TextEncoder().encode(JSON.stringify(toCloudEvent(event, publicUrl)));
  return { webhookId: webhookIdOf(event.operationId, event.seq, endpoint), body, ...trace };
}
