/**
 * The client-facing operations API under the reserved prefix `/_spillway/`:
 * the status monitor and the result (BRIEF §6).
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../clock.ts';
import { resumeAfter, type SseOptions, streamEvents } from '../delivery/sse.ts';
import { operationLinks, retryAfterSeconds, statusMonitor } from '../delivery/status-monitor.ts';
import { deliveriesView } from '../delivery/webhooks/deliveries-view.ts';
import { WEBSOCKET_PATH } from '../delivery/websocket.ts';
import { isOperationId } from '../engine/operation-id.ts';
import { type ErrorCode, errorTable } from '../errors.ts';
import { type LifecycleEvents, traceIdOf } from '../events/lifecycle.ts';
import type { EventLog, Operation, OperationQueue, WebhookOutbox } from '../store/port.ts';
import { callerTenant, mayRead } from './access.ts';
import type { Admission } from './admission.ts';
import { corsHeaders, storedWithOwnHeaders } from './cors.ts';
import { decodedSegment } from './edge-server.ts';
import { sendProblem } from './problem-response.ts';

export const RESERVED_PREFIX = '/_spillway/';
/** The OpenAPI 3.1 description of everything under the prefix: docs/openapi.json, served as it is. */
export const OPENAPI_PATH = '/_spillway/openapi.json';

export interface OperationsApiOptions {
  /** The status monitor (get, cancel), its event stream, and its webhook deliveries. */
  store: OperationQueue & EventLog & Pick<WebhookOutbox, 'webhookDeliveries'>;
  clock: Clock;
  publicUrl: string;
  /** Browser origins allowed to read the operations API (CORS), with credentials. */
  corsOrigins: ReadonlySet<string>;
  sse: Omit<SseOptions, 'store' | 'clock' | 'publicUrl'>;
  /** The header whose value identifies the caller's tenant: only the creator's tenant sees an operation. */
  tenantHeader: string;
  /** Where a client's cancel is told (logs, metrics). */
  events?: LifecycleEvents;
}

/** A request's place among those in flight, and the bound of event streams it moves to if it becomes one. */
export interface OperationsApiPlace {
  leave: () => void;
  streams: Admission;
}

export async function serveOperationsApi(
  req: IncomingMessage,
  res: ServerResponse,
  target: { path: string; query: string },
  options: OperationsApiOptions,
  place: OperationsApiPlace,
): Promise<void> {
  const { store, clock, publicUrl } = options;
  const { path } = target;
  const cors = corsHeaders(req.headers.origin, options.corsOrigins);
  if (path === OPENAPI_PATH) {
    await sendOpenApiDocument(req, res, cors);
    return;
  }
  if (path === WEBSOCKET_PATH) {
    // Handshakes are taken by the server's 'upgrade' event (src/delivery/websocket.ts); this is anything else.
    sendProblem(
      res,
      'upgrade-required',
      `${WEBSOCKET_PATH} speaks WebSocket only: open a WebSocket to it, or follow one operation with GET /_spillway/operations/{id}/events.`,
      { ...cors, upgrade: 'websocket', connection: 'Upgrade' },
    );
    return;
  }
  const match = /^\/_spillway\/operations\/([^/]+)(?:\/(result|events|cancel|deliveries))?$/.exec(path);
  if (!match) {
    sendProblem(
      res,
      'not-found',
      `Nothing is served at ${path}. See GET /_spillway/operations/{id}, its /result, /events and /deliveries, and POST its /cancel.`,
      cors,
    );
    return;
  }
  if (req.method === 'OPTIONS') {
    // CORS preflight, for fetch-based clients that send Last-Event-ID themselves.
    const allowed = 'access-control-allow-origin' in cors;
    res.writeHead(204, {
      ...cors,
      ...(allowed
        ? {
            'access-control-allow-methods': 'GET, HEAD, POST',
            'access-control-allow-headers': 'Last-Event-ID',
            'access-control-max-age': '600',
          }
        : {}),
    });
    res.end();
    return;
  }
  const canceling = match[2] === 'cancel';
  const allow = canceling ? ['POST', 'OPTIONS'] : ['GET', 'HEAD', 'OPTIONS'];
  if (!allow.includes(req.method ?? '')) {
    sendProblem(res, 'method-not-allowed', `${req.method} is not supported here; use ${allow[0]}.`, {
      ...cors,
      allow: allow.join(', '),
    });
    return;
  }
  // A segment that does not decode is no operation id: unknown, like any other.
  const id = decodedSegment(match[1]!);
  const found = id !== undefined && isOperationId(id) ? await store.get(id) : undefined;
  // Another tenant's operation is answered exactly like an unknown one: nothing leaks.
  const op = found && mayRead(found, callerTenant(req.headers, options.tenantHeader)) ? found : undefined;
  if (!op) {
    sendProblem(
      res,
      'operation-not-found',
      `No operation has the id ${JSON.stringify(id ?? match[1])}. Check the id from the 202's Operation-Location.`,
      cors,
    );
    return;
  }
  if (canceling) {
    if (await store.cancel(op.id)) {
      options.events?.emit({
        type: 'operation:canceled',
        at: clock.now(),
        operationId: op.id,
        route: op.route,
        traceId: traceIdOf(op.traceparent),
        by: 'client',
      });
    }
    const now = (await store.get(op.id)) ?? op;
    if (now.status === 'Running') {
      sendProblem(
        res,
        'operation-running',
        'An attempt has started, so the request may already be at the upstream; wait for the outcome instead.',
        cors,
        { operationId: op.id },
      );
      return;
    }
    // Canceled now or before, or already terminal: 200 with the monitor, unchanged if it was terminal.
    sendJson(res, 200, statusMonitor(now, operationLinks(publicUrl, now.id)), {
      ...cors,
      'cache-control': 'no-store',
    });
    return;
  }
  if (match[2] === 'events') {
    // A stream holds its place among the open streams, not among the requests in flight.
    if (!place.streams.enter(res)) {
      place.streams.refuse(
        res,
        cors,
        `Or poll the status monitor, ${operationLinks(publicUrl, op.id).monitor}.`,
      );
      return;
    }
    place.leave();
    const header = req.headers['last-event-id'];
    const lastEventId =
      (typeof header === 'string' ? header : undefined) ??
      new URLSearchParams(target.query).get('lastEventId') ??
      undefined;
    await streamEvents(req, res, op.id, resumeAfter(op.id, lastEventId), cors, {
      ...options.sse,
      store,
      clock,
      publicUrl,
      ...(options.events
        ? {
            onError: (error: unknown) =>
              options.events?.emit({
                type: 'request:error',
                at: clock.now(),
                source: 'request',
                error,
                method: 'GET',
                path: target.path,
              }),
          }
        : {}),
    });
    return;
  }
  if (match[2] === 'deliveries') {
    // Webhook deliveries and their attempts, under the same tenant check as the monitor.
    sendJson(res, 200, deliveriesView(op.id, await store.webhookDeliveries(op.id)), {
      ...cors,
      'cache-control': 'no-store',
    });
    return;
  }
  const links = operationLinks(publicUrl, op.id);
  const retryAfter = retryAfterSeconds(op, clock.now());
  const pollHeaders: Record<string, string | number> = { ...cors, 'cache-control': 'no-store' };
  if (retryAfter !== undefined) pollHeaders['retry-after'] = retryAfter;

  if (match[2] === undefined || retryAfter !== undefined) {
    // The monitor, or the result of an operation still under way: 202 with itself as Location.
    const pending = match[2] !== undefined;
    sendJson(res, pending ? 202 : 200, statusMonitor(op, links), {
      ...pollHeaders,
      ...(pending ? { location: links.result } : {}),
    });
    return;
  }
  sendResult(res, op, links.monitor, cors);
}

function sendResult(res: ServerResponse, op: Operation, monitor: string, cors: Record<string, string>): void {
  if (op.result) {
    // The upstream's own answer, byte for byte (its final success, or its final refusal).
    res.writeHead(op.result.status, storedWithOwnHeaders(op.result.headers, cors));
    res.end(op.result.body);
    return;
  }
  // Failed by Spillway's own decision (an upstream's final answer is replayed above).
  const code: ErrorCode =
    op.status === 'Canceled'
      ? 'operation-canceled'
      : op.error && op.error.code in errorTable
        ? (op.error.code as ErrorCode)
        : 'upstream-failed';
  const detail =
    op.status !== 'Canceled' ? (op.error?.message ?? 'The operation failed.') : canceledDetail(op);
  sendProblem(
    res,
    code,
    detail,
    { ...cors, link: `<${monitor}>; rel="monitor"` },
    {
      operationId: op.id,
      attempts: op.attempts,
      deadLettered: op.deadLetteredAt !== null,
      ...(op.error?.upstreamStatus === undefined ? {} : { upstreamStatus: op.error.upstreamStatus }),
    },
  );
}

const OPENAPI_FILE = new URL('../../docs/openapi.json', import.meta.url);
let openApiDocument: Promise<Buffer> | undefined;

/** Read once, on first request; a failed read is not cached, so the next request tries again. */
async function sendOpenApiDocument(
  req: IncomingMessage,
  res: ServerResponse,
  cors: Record<string, string>,
): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendProblem(res, 'method-not-allowed', `${req.method} is not supported here; use GET.`, {
      ...cors,
      allow: 'GET, HEAD',
    });
    return;
  }
  openApiDocument ??= readFile(OPENAPI_FILE).catch((error: unknown) => {
    openApiDocument = undefined;
    throw error;
  });
  const body = await openApiDocument;
  res.writeHead(200, {
    ...cors,
    'content-type': 'application/json',
    'content-length': body.length,
    // It changes only with a release, but then at once: reuse only after asking again.
    'cache-control': 'no-cache',
  });
  res.end(body);
}

/** What a canceled operation's result says: whether the upstream may have it after all. */
function canceledDetail(op: Operation): string {
  return op.outcomeUnknown
    ? 'The operation was canceled before its next attempt, but an earlier attempt may have reached the upstream (its connection broke mid-request): check there before sending it again.'
    : 'The operation was canceled before the upstream processed it: no attempt reached it, or it was refused with a failover status. Send the request again if it is still wanted.';
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string | number> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
