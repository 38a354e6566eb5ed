/**
 * `GET /api/webhooks/deliveries?state=&endpoint=&limit=&cursor=`: the webhook
 * deliveries in one state, of every operation and every process sharing the
 * store, a page at a time, newest first (docs/operations.md#webhooks). Where an
 * operator finds what failed or was disabled, to fix the receiver and re-send
 * (POST /api/operations/{id}/deliveries/{endpoint}/{seq}/resend).
 *
 * Newest first by creation (the terminal event's time), as operations are
 * listed: what just went wrong comes first, and the cursor is a position that
 * never moves, since a delivery's creation time never changes, so pages do not
 * skip or repeat deliveries while the dispatchers record attempts. Each
 * delivery is shown without its attempt log: that is per delivery and grows
 * with its attempts, and `GET /_spillway/operations/{id}/deliveries` shows it.
 * Unlike that client-facing view, an operator sees every endpoint's URL and
 * last error: the subscriptions are theirs.
 */
import type { ServerResponse } from 'node:http';
import { ENDPOINT_NAME, webhookIdOf } from '../../delivery/webhooks/message.ts';
import { sendJson } from '../../gateway/operations-api.ts';
import { sendProblem } from '../../gateway/problem-response.ts';
import {
  type WebhookDelivery,
  type WebhookDeliveryPosition,
  type WebhookDeliveryQuery,
  type WebhookOutbox,
  webhookDeliveryStates,
} from '../../store/port.ts';
import { act, BadBody, DEFAULT_PAGE, limitOf, MAX_PAGE, pageOf } from './admin-http.ts';

export const DELIVERIES_PATH = '/api/webhooks/deliveries';

/** Answers a GET of DELIVERIES_PATH: a page, or a 400 problem naming the query parameter to fix. */
export function listDeliveries(res: ServerResponse, params: URLSearchParams, store: WebhookOutbox): void {
  let query: WebhookDeliveryQuery;
  try {
    query = queryOf(params);
  } catch (error) {
    if (!(error instanceof BadBody)) throw error;
    sendProblem(res, 'bad-request', error.message);
    return;
  }
  act(res, async () => {
    const found = await store.listWebhookDeliveries({ ...query, limit: query.limit + 1 });
    const { page, nextCursor } = pageOf(found, query.limit, encodeCursor);
    sendJson(res, 200, { deliveries: page.map(deliveryView), nextCursor }, { 'cache-control': 'no-store' });
  });
}

function queryOf(params: URLSearchParams): WebhookDeliveryQuery {
  const state = params.get('state');
  const states = webhookDeliveryStates.join(', ');
  if (state === null) {
    throw new BadBody(`state is required: send one of ${states}, as in ?state=failed.`);
  }
  if (!(webhookDeliveryStates as readonly string[]).includes(state)) {
    throw new BadBody(`state must be one of ${states}, got ${JSON.stringify(state)}.`);
  }
  const query: WebhookDeliveryQuery = {
    state: state as WebhookDelivery['state'],
    limit: limitOf(params.get('limit'), DEFAULT_PAGE, MAX_PAGE),
  };
  const endpoint = params.get('endpoint');
  if (endpoint !== null) {
    if (!ENDPOINT_NAME.test(endpoint)) {
      throw new BadBody(
        `endpoint must be "callback" or a subscription's name (1 to 64 of A-Z a-z 0-9 _ -), got ${JSON.stringify(endpoint)}.`,
      );
    }
    query.endpoint = endpoint;
  }
  const cursor = params.get('cursor');
  if (cursor) query.after = decodeCursor(cursor);
  return query;
}

/** The page cursor: opaque to clients, the last listed delivery's (created, operation id, seq, endpoint) inside. */
function encodeCursor(d: WebhookDeliveryPosition): string {
  return Buffer.from(JSON.stringify([d.createdAt, d.operationId, d.seq, d.endpoint])).toString('base64url');
}

function decodeCursor(cursor: string): WebhookDeliveryPosition {
  try {
    const [createdAt, operationId, seq, endpoint] = JSON.parse(
      Buffer.from(cursor, 'base64url').toString('utf8'),
    ) as unknown[];
    if (
      Number.isSafeInteger(createdAt) &&
      typeof operationId === 'string' &&
      Number.isSafeInteger(seq) &&
      typeof endpoint === 'string'
    ) {
      return { createdAt: createdAt as number, operationId, seq: seq as number, endpoint };
    }
  } catch {
    // Not JSON (or not an array): reported below like any other cursor this API did not give.
  }
  throw new BadBody('cursor is not one this API gave: pass nextCursor from the previous page as it is.');
}

const iso = (ms: number) => new Date(ms).toISOString();

/** A delivery as an operator sees it: the fields of the per-operation view, every URL and error shown. */
function deliveryView(d: WebhookDelivery) {
  return {
    webhookId: webhookIdOf(d.operationId, d.seq, d.endpoint),
    operationId: d.operationId,
    eventId: `${d.operationId}:${d.seq}`, // as cloud-event.ts's eventId
    seq: d.seq,
    endpoint: d.endpoint,
    url: d.url,
    state: d.state,
    attempts: d.attempts,
    ...(d.state === 'pending' ? { nextAttemptDateTime: iso(d.nextAttemptAt) } : {}),
    lastError: d.lastError,
    createdDateTime: iso(d.createdAt),
    lastActionDateTime: iso(d.updatedAt),
  };
}
