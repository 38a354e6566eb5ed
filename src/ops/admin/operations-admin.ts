/**
 * The operations admin API (docs/operations.md#admin-api): find operations and
 * act on them, from any process sharing the store.
 *
 *   GET  /api/operations?status=&route=&deadLettered=&limit=&cursor=   a page, newest first
 *   GET  /api/operations/{id}                 one operation, its attempt history and events
 *   POST /api/operations/{id}/redrive         a dead letter back to replay ({includeOutcomeUnknown})
 *   POST /api/operations/{id}/discard         a dead letter off the list (stays Failed)
 *   POST /api/operations/{id}/cancel          not started, or between attempts
 *   POST /api/operations/redrive|discard      dead letters in bulk, a batch per call ({route, limit, cursor})
 *   PUT  /api/routes/{route}/replay           paused | running, kept in the store
 *   GET  /api/ordering-keys/blocked?limit=    ordering keys blocked by a dead letter at their head
 *
 * Every action goes through the store, atomically, so it is right whichever
 * process serves it; nothing here replays or sends anything itself. Bodies
 * and header values of the captured request are never shown: they may hold
 * credentials and personal data.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../clock.ts';
import { endSpan, remoteContext, SpanKind, startSpan } from '../../engine/spans.ts';
import { type LifecycleEvents, traceIdOf } from '../../events/lifecycle.ts';
import { sendJson } from '../../gateway/operations-api.ts';
import { sendProblem } from '../../gateway/problem-response.ts';
import type { RoutePolicy } from '../../policy/route-policy.ts';
import {
  type AttemptRecord,
  type EventLog,
  isTerminal,
  type Operation,
  type OperationEvent,
  type OperationFilter,
  type OperationQuery,
  type OperationQueue,
  type OperationSummary,
  type OperatorViews,
  operationStatuses,
  type RouteControls,
} from '../../store/port.ts';

import {
  act,
  allowOnly,
  BadBody,
  DEFAULT_PAGE,
  limitOf,
  MAX_PAGE,
  pageOf,
  readJsonObject,
  readText,
  segment,
} from './admin-http.ts';

/** Operations listed, shown with their history and events, canceled, redriven or discarded; replay paused per route. */
export type OperationsAdminStore = OperationQueue & OperatorViews & RouteControls & EventLog;

export interface OperationsAdminOptions {
  store: OperationsAdminStore;
  /** The configured routes (a paused replay must name one; /api/health reads their windows). */
  routes: readonly RoutePolicy[];
  /** Looks for due operations at once (this process's replay worker, when it has one). */
  wake?: () => void;
  /** Where each action taken is told (logs, metrics). */
  events: LifecycleEvents;
  clock: Clock;
  /** A request body that stalls this long is answered 408 (bodyTimeoutMs). */
  bodyTimeoutMs: number;
}

/**
 * Tells the event stream that an operator acted on `op`, and records the action
 * as a span in the operation's trace (its stored traceparent), so the trace
 * shows why a dead letter's replays started again.
 */
function acted(
  options: OperationsAdminOptions,
  type: 'operation:redriven' | 'operation:discarded' | 'operation:canceled',
  op: Operation,
): void {
  const action = type.slice('operation:'.length);
  endSpan(
    startSpan(`${action} ${op.route}`, SpanKind.INTERNAL, remoteContext(op.traceparent, op.tracestate), {
      'messaging.message.id': op.id,
      'spillway.action': action,
      'spillway.by': 'operator',
    }),
  );
  const facts = {
    at: options.clock.now(),
    operationId: op.id,
    route: op.route,
    traceId: traceIdOf(op.traceparent),
    by: 'operator',
  } as const;
  if (type === 'operation:canceled') options.events.emit({ type, ...facts });
  else options.events.emit({ type, ...facts });
}

const DEFAULT_BATCH = 100;
const MAX_BATCH = 1_000;

const ONE = /^\/api\/operations\/([^/]+)$/;
const ACTION = /^\/api\/operations\/([^/]+)\/(redrive|discard|cancel)$/;
const BULK = /^\/api\/operations\/(redrive|discard)$/;
const REPLAY = /^\/api\/routes\/([^/]+)\/replay$/;
const BLOCKED_KEYS = '/api/ordering-keys/blocked';

/** Answers the operations admin paths; false for any other path. */
export function serveOperationsAdmin(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  options: OperationsAdminOptions,
): boolean {
  const path = url.pathname;
  if (path === BLOCKED_KEYS) {
    if (allowOnly(req, res, 'GET')) listBlockedKeys(res, url.searchParams, options.store);
    return true;
  }
  if (path === '/api/operations') {
    if (allowOnly(req, res, 'GET')) listOperations(res, url.searchParams, options.store);
    return true;
  }
  const bulk = BULK.exec(path);
  if (bulk) {
    if (allowOnly(req, res, 'POST'))
      act(res, () => bulkAction(req, res, bulk[1] as 'redrive' | 'discard', options));
    return true;
  }
  const action = ACTION.exec(path);
  if (action) {
    const id = segment(res, action[1]!);
    if (id !== undefined && allowOnly(req, res, 'POST')) {
      act(res, () => operationAction(req, res, id, action[2] as 'redrive' | 'discard' | 'cancel', options));
    }
    return true;
  }
  const one = ONE.exec(path);
  if (one) {
    const id = segment(res, one[1]!);
    if (id !== undefined && allowOnly(req, res, 'GET')) act(res, () => showOperation(res, id, options.store));
    return true;
  }
  const replay = REPLAY.exec(path);
  if (replay) {
    const route = segment(res, replay[1]!);
    if (route !== undefined && allowOnly(req, res, 'PUT'))
      act(res, () => setReplay(req, res, route, options));
    return true;
  }
  return false;
}

function listOperations(res: ServerResponse, params: URLSearchParams, store: OperationsAdminStore): void {
  let query: OperationQuery;
  try {
    query = { ...filterOf(params), limit: limitOf(params.get('limit'), DEFAULT_PAGE, MAX_PAGE) };
    const cursor = params.get('cursor');
    if (cursor) query.after = decodeCursor(cursor);
  } catch (error) {
    sendProblem(res, 'bad-request', (error as Error).message);
    return;
  }
  act(res, async () => {
    const found = await store.listOperations({ ...query, limit: query.limit + 1 });
    const { page, nextCursor } = pageOf(found, query.limit, encodeCursor);
    sendJson(res, 200, { operations: page.map(summaryView), nextCursor }, { 'cache-control': 'no-store' });
  });
}

/** FIFO per key: the keys a dead letter holds up, and how much waits behind each (docs/operations.md). */
function listBlockedKeys(res: ServerResponse, params: URLSearchParams, store: OperationsAdminStore): void {
  let limit: number;
  try {
    limit = limitOf(params.get('limit'), DEFAULT_PAGE, MAX_PAGE);
  } catch (error) {
    sendProblem(res, 'bad-request', (error as Error).message);
    return;
  }
  act(res, async () => {
    const keys = await store.blockedOrderingKeys(limit);
    sendJson(
      res,
      200,
      {
        blockedKeys: keys.map((key) => ({
          route: key.route,
          orderingKey: key.orderingKey,
          deadLetteredOperationId: key.operationId,
          deadLetteredDateTime: iso(key.deadLetteredAt),
          waiting: key.waiting,
        })),
      },
      { 'cache-control': 'no-store' },
    );
  });
}

async function showOperation(res: ServerResponse, id: string, store: OperationsAdminStore): Promise<void> {
  const op = await store.get(id);
  if (!op) return notFound(res, id);
  const [history, events] = await Promise.all([store.attemptLog(id), store.events(id, 0)]);
  sendJson(res, 200, detailView(op, history, events), { 'cache-control': 'no-store' });
}

async function operationAction(
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
  action: 'redrive' | 'discard' | 'cancel',
  options: OperationsAdminOptions,
): Promise<void> {
  const { store } = options;
  if (action === 'cancel') {
    const canceled = await store.cancel(id, { betweenAttempts: true });
    const op = await store.get(id);
    if (!op) return notFound(res, id);
    if (!canceled) return refuseCancel(res, op);
    acted(options, 'operation:canceled', op);
    return sendJson(res, 200, operationView(op));
  }
  if (action === 'discard') {
    const result = await store.discard(id);
    if (result.outcome === 'unknown') return notFound(res, id);
    if (result.outcome === 'refused') return notDeadLettered(res, result.operation, 'discarded');
    acted(options, 'operation:discarded', result.operation);
    options.wake?.(); // the next operation of its ordering key, if any, is due now
    return sendJson(res, 200, operationView(result.operation));
  }
  const body = await readJsonObject(req, res, options.bodyTimeoutMs);
  const includeOutcomeUnknown = booleanOf(body, 'includeOutcomeUnknown');
  const result = await store.redrive(id, { includeOutcomeUnknown });
  if (result.outcome === 'unknown') return notFound(res, id);
  if (result.outcome === 'refused') {
    if (result.reason === 'not-dead-lettered') return notDeadLettered(res, result.operation, 'redriven');
    return sendProblem(
      res,
      'redrive-needs-confirmation',
      `An attempt of ${id} may have reached the upstream, and its answer was lost: redriving it may do its effect twice. Check the upstream first; to redrive it anyway, send {"includeOutcomeUnknown": true}.`,
      {},
      { operationId: id },
    );
  }
  acted(options, 'operation:redriven', result.operation);
  options.wake?.();
  sendJson(res, 200, operationView(result.operation));
}

/**
 * Bulk redrive or discard of dead letters matching `route` (all routes without
 * it), one batch of at most `limit` per call, newest first: the answer's
 * `nextCursor` continues where it stopped, null once none is left. Operations
 * refused (outcome unknown without includeOutcomeUnknown, or changed meanwhile)
 * are listed under `skipped` and left as they are.
 */
async function bulkAction(
  req: IncomingMessage,
  res: ServerResponse,
  action: 'redrive' | 'discard',
  options: OperationsAdminOptions,
): Promise<void> {
  const { store } = options;
  const body = await readJsonObject(req, res, options.bodyTimeoutMs);
  const route = body.route;
  if (route !== undefined && (typeof route !== 'string' || route === '')) {
    throw new BadBody(`route must be a route name, got ${JSON.stringify(route)}.`);
  }
  const includeOutcomeUnknown = booleanOf(body, 'includeOutcomeUnknown');
  if (action === 'discard' && body.includeOutcomeUnknown !== undefined) {
    throw new BadBody('includeOutcomeUnknown applies to redrive only: any dead letter may be discarded.');
  }
  const limit = limitOf(body.limit === undefined ? null : String(body.limit), DEFAULT_BATCH, MAX_BATCH);
  if (body.cursor !== undefined && typeof body.cursor !== 'string') {
    throw new BadBody('cursor must be the string a previous answer gave as nextCursor.');
  }
  const after = body.cursor ? decodeCursor(body.cursor) : undefined;
  const batch = await store.listOperations({
    deadLettered: true,
    ...(route === undefined ? {} : { route }),
    limit: limit + 1,
    ...(after ? { after } : {}),
  });
  const page = batch.slice(0, limit);
  const done: string[] = [];
  const skipped: Array<{ id: string; reason: string }> = [];
  for (const op of page) {
    const result =
      action === 'redrive'
        ? await store.redrive(op.id, { includeOutcomeUnknown })
        : await store.discard(op.id);
    if (result.outcome === 'unknown') skipped.push({ id: op.id, reason: 'purged' });
    else if (result.outcome === 'refused') skipped.push({ id: op.id, reason: result.reason });
    else {
      done.push(op.id);
      acted(options, action === 'redrive' ? 'operation:redriven' : 'operation:discarded', result.operation);
    }
  }
  if (done.length > 0) options.wake?.(); // redriven ones, or the keys discarded dead letters held up
  const last = page.at(-1);
  sendJson(res, 200, {
    [action === 'redrive' ? 'redriven' : 'discarded']: done,
    skipped,
    nextCursor: batch.length > limit && last ? encodeCursor(last) : null,
  });
}

async function setReplay(
  req: IncomingMessage,
  res: ServerResponse,
  route: string,
  options: OperationsAdminOptions,
): Promise<void> {
  const names = options.routes.map((r) => r.name);
  if (!names.includes(route)) {
    return sendProblem(
      res,
      'not-found',
      `No route is named ${JSON.stringify(route)}. Routes: ${names.join(', ')}.`,
    );
  }
  const text = (await readText(req, res, options.bodyTimeoutMs)).trim();
  let value: unknown = text;
  if (text.startsWith('{')) {
    try {
      value = (JSON.parse(text) as { replay?: unknown }).replay;
    } catch {
      value = undefined;
    }
  }
  if (value !== 'paused' && value !== 'running') {
    throw new BadBody('Send paused or running, as text or as {"replay": "…"}.');
  }
  await options.store.setReplayPaused(route, value === 'paused');
  if (value === 'running') options.wake?.();
  const pausedAt = (await options.store.pausedReplays())[route];
  sendJson(res, 200, {
    route,
    replay: pausedAt === undefined ? 'running' : 'paused',
    ...(pausedAt === undefined ? {} : { pausedDateTime: iso(pausedAt) }),
  });
}

function refuseCancel(res: ServerResponse, op: Operation): void {
  if (isTerminal(op.status)) {
    sendProblem(
      res,
      'operation-terminal',
      `The operation ${op.id} has already ended ${op.status}; there is nothing to cancel.`,
      {},
      { operationId: op.id, operationStatus: op.status },
    );
    return;
  }
  sendProblem(
    res,
    'operation-running',
    `An attempt of ${op.id} is in flight (it holds a lease), so the request may already be at the upstream; cancel it after the attempt, or wait for its outcome.`,
    {},
    { operationId: op.id },
  );
}

function notDeadLettered(res: ServerResponse, op: Operation, verb: string): void {
  const why =
    op.discardedAt !== null
      ? `it was discarded at ${iso(op.discardedAt)}`
      : `it is ${op.status}${op.status === 'Failed' ? ' with the upstream’s final answer' : ''}`;
  sendProblem(
    res,
    'not-dead-lettered',
    `The operation ${op.id} is not dead-lettered (${why}); only dead letters are ${verb}. GET /api/operations?deadLettered=true lists them.`,
    {},
    { operationId: op.id, operationStatus: op.status },
  );
}

function notFound(res: ServerResponse, id: string): void {
  sendProblem(
    res,
    'operation-not-found',
    `No operation has the id ${JSON.stringify(id)} (never captured, or purged after retentionMs). GET /api/operations lists them.`,
  );
}

function filterOf(params: URLSearchParams): OperationFilter {
  const filter: OperationFilter = {};
  const status = params.get('status');
  if (status !== null) {
    if (!(operationStatuses as readonly string[]).includes(status)) {
      throw new Error(
        `status must be one of ${operationStatuses.join(', ')}, got ${JSON.stringify(status)}.`,
      );
    }
    filter.status = status as OperationFilter['status'];
  }
  const route = params.get('route');
  if (route !== null) filter.route = route;
  const dead = params.get('deadLettered');
  if (dead !== null) {
    if (dead !== 'true' && dead !== 'false') {
      throw new Error(`deadLettered must be true or false, got ${JSON.stringify(dead)}.`);
    }
    filter.deadLettered = dead === 'true';
  }
  return filter;
}

function booleanOf(body: Record<string, unknown>, key: string): boolean {
  const value = body[key];
  if (value === undefined) return false;
  if (typeof value !== 'boolean')
    throw new BadBody(`${key} must be true or false, got ${JSON.stringify(value)}.`);
  return value;
}

/** The page cursor: opaque to clients, the last listed operation's (created, id) inside. */
function encodeCursor(op: { createdAt: number; id: string }): string {
  return Buffer.from(JSON.stringify([op.createdAt, op.id])).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: number; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    if (Number.isSafeInteger(createdAt) && typeof id === 'string')
      return { createdAt: createdAt as number, id };
  } catch {
    // Not JSON: reported below like any other cursor this API did not give.
  }
  throw new BadBody('cursor is not one this API gave: pass nextCursor from the previous page as it is.');
}

const iso = (ms: number) => new Date(ms).toISOString();

/** An operation as the list shows it. */
function summaryView(op: OperationSummary) {
  const waiting = !isTerminal(op.status);
  return {
    id: op.id,
    route: op.route,
    method: op.method,
    path: op.path,
    status: op.status,
    attempts: op.attempts,
    deadLettered: op.deadLetteredAt !== null,
    ...(op.deadLetteredAt === null ? {} : { deadLetteredDateTime: iso(op.deadLetteredAt) }),
    outcomeUnknown: op.outcomeUnknown,
    attemptInFlight: op.leased,
    ...(waiting && !op.leased ? { nextAttemptDateTime: iso(op.nextAttemptAt) } : {}),
    ...(op.error ? { lastError: op.error } : {}),
    ...(op.failoverReason === null ? {} : { failoverReason: op.failoverReason }),
    ...orderingView(op),
    createdDateTime: iso(op.createdAt),
    lastActionDateTime: iso(op.updatedAt),
  };
}

/**
 * FIFO per key: the operation's key (`<tenant digest or ->/<key>`), whether it waits behind an
 * earlier one of the key, and whether, as a dead letter, it holds its key up.
 */
function orderingView(op: Pick<OperationSummary, 'orderingKey' | 'keyBlocked' | 'deadLetteredAt'>) {
  if (op.orderingKey === null) return {};
  return {
    orderingKey: op.orderingKey,
    ...(op.keyBlocked ? { waitingBehindOrderingKey: true } : {}),
    ...(op.deadLetteredAt === null ? {} : { blocksOrderingKey: true }),
  };
}

function operationView(op: Operation) {
  return {
    ...summaryView({
      ...op,
      method: op.request.method,
      path: op.request.path,
      leased: op.leaseOwner !== null,
    }),
    ...(op.redrivenAt === null ? {} : { redrivenDateTime: iso(op.redrivenAt) }),
    ...(op.discardedAt === null ? {} : { discardedDateTime: iso(op.discardedAt) }),
  };
}

/** One operation for an operator: no bodies, no header values (they may hold credentials). */
function detailView(op: Operation, history: AttemptRecord[], events: OperationEvent[]) {
  return {
    ...operationView(op),
    query: op.request.query,
    headerNames: [...new Set(op.request.headers.map(([name]) => name))],
    priority: op.priority,
    ...(op.result ? { resultStatus: op.result.status } : {}),
    attemptHistory: history.map((a) => ({
      attempt: a.attempt,
      startedDateTime: iso(a.startedAt),
      durationMs: a.durationMs,
      outcome: a.outcome,
      ...(a.upstreamStatus === null ? {} : { upstreamStatus: a.upstreamStatus }),
      ...(a.error === null ? {} : { error: a.error }),
    })),
    events: events.map((e) => ({
      seq: e.seq,
      status: e.status,
      dateTime: iso(e.at),
      attempts: e.attempts,
      ...(e.error ? { error: e.error } : {}),
    })),
  };
}
