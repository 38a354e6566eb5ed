/**
 * The OperationStore port: the only way the engine and the workers reach
 * storage, in the verbs of the domain (docs/glossary.md). Adapters own their
 * connections and SQL; nothing outside `src/store/<adapter>/` sees either.
 *
 * Every verb is asynchronous so that a networked adapter (PostgreSQL) fits
 * unchanged. A verb that resolves has made its write durable; one that cannot
 * rejects with StoreUnavailableError and leaves nothing half-written.
 *
 * Every lease (a replay, an adoption, a webhook delivery) carries its own
 * random token. The verbs that finish, retry, hand back or extend a lease
 * (`complete`, `retry`, `fail`, `release`, `extendLease`, and the webhook
 * ones) are fenced by that token, never by the owner name: they resolve
 * `false`, changing nothing, once the lease is no longer the caller's (it
 * expired and was handed back, or another lease took over). An owner name
 * identifies a process, which may hold several leases of one operation over
 * time (its adoption and its own replay worker); a token identifies one claim.
 */

export const operationStatuses = ['NotStarted', 'Running', 'Succeeded', 'Failed', 'Canceled'] as const;
export type OperationStatus = (typeof operationStatuses)[number];

export const isTerminal = (status: OperationStatus): boolean =>
  status === 'Succeeded' || status === 'Failed' || status === 'Canceled';

/** Header fields as ordered name/value pairs, names lower-case. */
export type HeaderList = Array<[name: string, value: string]>;

/** The captured request, enough to replay it. */
export interface CapturedRequest {
  method: string;
  path: string;
  /** The raw query string without `?`, empty when there is none. */
  query: string;
  /** Allow-listed end-to-end headers (see the route's `captureHeaders`). */
  headers: HeaderList;
  body: Uint8Array;
}

/** An upstream response kept byte for byte. */
export interface StoredResponse {
  status: number;
  headers: HeaderList;
  body: Uint8Array;
}

export interface OperationError {
  code: string;
  message: string;
  /** The upstream status of the last attempt, when it answered. */
  upstreamStatus?: number;
}

export interface Operation {
  /** Unguessable (96 random bits after its creation time): src/engine/operation-id.ts. */
  id: string;
  /** The name of the route whose policy governs it. */
  route: string;
  request: CapturedRequest;
  status: OperationStatus;
  /** Attempts made, counting the sync attempt and any lost in a crash. */
  attempts: number;
  /** Epoch ms; the operation is due for replay from then on. */
  nextAttemptAt: number;
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  /** An earlier attempt may have reached the upstream and its outcome is unknown. */
  outcomeUnknown: boolean;
  result: StoredResponse | null;
  error: OperationError | null;
  deadLetteredAt: number | null;
  /** Higher is replayed first. */
  priority: number;
  /** The Idempotency-Key forwarded on every attempt, when the route uses one. */
  idempotencyKey: string | null;
  /** Digest of the creator's credential (src/gateway/access.ts); null when it sent none. */
  tenant: string | null;
  /** Where the operation's terminal event is posted (`Spillway-Callback`, checked by the guard); null without one. */
  callbackUrl: string | null;
  traceparent: string | null;
  tracestate: string | null;
  /** Why the request went async (`Spillway-Failover-Reason`); null for rows captured before it was kept. */
  failoverReason: string | null;
  /** Epoch ms of the last redrive; the retry budget (maxAttempts, maxAgeMs) counts from then. */
  redrivenAt: number | null;
  /** `attempts` when it was last redriven (0 before any): attempts since are `attempts - attemptsAtRedrive`. */
  attemptsAtRedrive: number;
  /** Epoch ms an operator discarded it as a dead letter: it stays `Failed` and leaves the dead-letter list. */
  discardedAt: number | null;
  /**
   * FIFO per key: operations of a route with the same key replay one at a time in capture order
   * (see `orderingKeyPending`). Scoped to the tenant by the gateway; null: no ordering.
   */
  orderingKey: string | null;
  /** Waiting behind an earlier operation of its ordering key that has not finished: not leased until it has. */
  keyBlocked: boolean;
  createdAt: number;
  updatedAt: number;
}

/** What `capture` writes. An adopted capture carries the lease of its in-flight attempt. */
export interface NewOperation {
  id: string;
  route: string;
  request: CapturedRequest;
  priority: number;
  idempotencyKey: string | null;
  tenant: string | null;
  traceparent: string | null;
  tracestate: string | null;
  /** Attempts already made before capture (the failed sync attempt, if any). */
  attempts: number;
  nextAttemptAt: number;
  outcomeUnknown: boolean;
  /** Set for adoption: the in-flight sync attempt continues as this lease, fenced by its token like any other. */
  lease?: { owner: string; token: string; expiresAt: number };
  /** Why the request went async, kept for the status monitor and operators. */
  failoverReason?: string | null;
  /**
   * Its ordering key: it joins the end of the key's queue, and is blocked while an earlier
   * operation of the key (same route) has not finished. An adoption is captured with a key only
   * when none of the key waits (the gateway asks `orderingKeyPending` first).
   */
  orderingKey?: string | null;
  /** The sync attempt that failed before capture (`attempts` is then 1): its record, in the capture's commit. */
  firstAttempt?: AttemptRecordInput;
  /**
   * The Idempotency-Key claim this request holds: the same commit that stores
   * the operation marks the key `accepted` with its id, so a duplicate finds
   * the operation and never a second capture.
   */
  idempotency?: { key: string; token: string };
  /** `Spillway-Callback`, already checked by the callback guard. */
  callbackUrl?: string | null;
  /**
   * The configured webhook subscriptions that apply to this operation, fixed
   * at capture: its terminal event is delivered to each whose `events` lists
   * it, whichever process later finishes the operation.
   */
  webhookSubscriptions?: readonly WebhookTarget[];
}

/** A leased operation: the token fences every write that ends or extends this lease. */
export interface LeasedOperation extends Operation {
  leaseOwner: string;
  leaseExpiresAt: number;
  leaseToken: string;
}

export interface LeaseRequest {
  owner: string;
  limit: number;
  /** How long a lease lasts, for routes not in `leaseMsByRoute`; its holder extends it while the attempt runs. */
  leaseMs: number;
  /** Lease durations by route name: each route's leases outlive its own attempts, not the longest route's. */
  leaseMsByRoute?: Readonly<Record<string, number>>;
  /** Routes not to lease from now (their replay is paused while the upstream recovers). */
  excludeRoutes?: readonly string[];
  /** Lease only from these routes (each route's replay has its own limits). */
  routes?: readonly string[];
  /**
   * The defined functions (`spillway.define`) this process runs, by route
   * name (`fn:<name>`). Operations of other function routes are left to the
   * processes that define them; a gateway or worker, which defines none,
   * never leases one. Default none.
   */
  functions?: readonly string[];
  /** False: lease only operations of `functions`, for a process with no upstream of its own. Default true. */
  proxiedRoutes?: boolean;
}

export interface RetryRecord {
  nextAttemptAt: number;
  error: OperationError;
  /** This attempt may have reached the upstream without an answer. */
  outcomeUnknown: boolean;
}

export interface FailRecord {
  error: OperationError;
  /** The upstream's own final answer, replayed by `/result`, when it gave one. */
  result: StoredResponse | null;
  /** Dead-letter it: kept for a person to inspect and redrive. */
  deadLetter: boolean;
  /** False when the operation is failed without being sent again. */
  countsAsAttempt: boolean;
}

export type StatusCounts = Record<OperationStatus, number> & { deadLettered: number };

/** Counts with every status at zero, for adapters to fill in. */
export const emptyStatusCounts = (): StatusCounts => ({
  NotStarted: 0,
  Running: 0,
  Succeeded: 0,
  Failed: 0,
  Canceled: 0,
  deadLettered: 0,
});

/**
 * One status change of an operation, as stored: the source of the SSE stream
 * and of webhooks. Written in the same transaction as the change itself.
 */
export interface OperationEvent {
  operationId: string;
  /** 1, 2, 3… per operation, in order, without gaps. */
  seq: number;
  status: OperationStatus;
  /** Epoch ms of the change. */
  at: number;
  attempts: number;
  error: OperationError | null;
}

/**
 * An Idempotency-Key record (docs/http-api.md, "Idempotency-Key"), under the
 * composite lookup key the gateway derives from tenant, method, route and the
 * client's key. `in-progress` while the first request is being handled;
 * `completed` with the upstream's answer when it was given synchronously;
 * `accepted` with the operation when it went async.
 */
export type IdempotencyRecord = { fingerprint: string; expiresAt: number } & (
  | { state: 'in-progress'; lockedUntil: number }
  | { state: 'completed'; response: StoredResponse }
  | { state: 'accepted'; operationId: string }
);

export interface IdempotencyClaim {
  key: string;
  /** Identifies this claim: later writes to the record are fenced by it. */
  token: string;
  /** Digest of the request (method, target, content type, body). */
  fingerprint: string;
  /**
   * Duplicates are refused (409) until then. Past it, the claimant is taken to
   * have died and the key can be claimed again, so a crash cannot block a key
   * for its whole life.
   */
  lockedUntil: number;
  /** The record is forgotten from then on: a reuse of the key is a new request. */
  expiresAt: number;
}

/** Terminal statuses as webhook subscriptions name them (`events`). */
export type WebhookEventName = 'succeeded' | 'failed' | 'canceled';

/** Where an operation's terminal event goes: its callback (`endpoint` "callback") or a subscription. */
export interface WebhookTarget {
  /** "callback", or the subscription's name; part of the webhook-id, so `[A-Za-z0-9_-]`. */
  endpoint: string;
  url: string;
  /** The terminal events delivered; null: all of them. */
  events: readonly WebhookEventName[] | null;
}

/**
 * A webhook delivery (docs/glossary.md): one terminal event to one endpoint.
 * `pending` until an attempt gets a 2xx (`delivered`), the schedule runs out
 * (`failed`), or the endpoint answers 410 or was disabled before (`disabled`).
 * The store creates it in the same commit as the terminal status change, once
 * per event and endpoint, and never again.
 */
export interface WebhookDelivery {
  operationId: string;
  /** The terminal event's seq. */
  seq: number;
  endpoint: string;
  url: string;
  state: (typeof webhookDeliveryStates)[number];
  /** Attempts made, counting one lost with a crashed holder. */
  attempts: number;
  /** Epoch ms the next attempt is due while pending (while leased: when the lease runs out). */
  nextAttemptAt: number;
  /** Why the last attempt did not deliver, or why the delivery ended. */
  lastError: string | null;
  createdAt: number;
  updatedAt: number;
}

/** One recorded delivery attempt. */
export interface WebhookAttempt {
  /** 1, 2, 3…; a number is missing for an attempt lost in a crash. */
  attempt: number;
  at: number;
  /** The receiver's status, when it answered. */
  status: number | null;
  /** What went wrong before an answer, else null. */
  error: string | null;
  latencyMs: number;
  /** The start of the receiver's answer (about 1 KiB), as text. */
  responseSnippet: string | null;
}

/** A leased delivery, with what its message is made of. */
export interface LeasedWebhookDelivery extends WebhookDelivery {
  /** Fences the attempt's record and a hand-back to this lease. */
  leaseToken: string;
  event: OperationEvent;
  traceparent: string | null;
  tracestate: string | null;
}

export interface WebhookLeaseRequest {
  owner: string;
  limit: number;
  leaseMs: number;
  /** Endpoints this process can deliver to (it has their secrets): "callback" and its subscriptions' names. */
  endpoints: readonly string[];
}

export type WebhookDeliveryKey = Pick<WebhookDelivery, 'operationId' | 'seq' | 'endpoint'>;

/** A delivery's states, as `WebhookDelivery.state` and the admin API's `state` name them. */
export const webhookDeliveryStates = ['pending', 'delivered', 'failed', 'disabled'] as const;

/** Where a delivery stands in `listWebhookDeliveries`' order: a page goes on after it. */
export type WebhookDeliveryPosition = Pick<WebhookDelivery, 'createdAt' | 'operationId' | 'seq' | 'endpoint'>;

/** The deliveries in one state, to one endpoint or to all, a page at a time (the admin API). */
export interface WebhookDeliveryQuery {
  state: WebhookDelivery['state'];
  /** "callback" or a subscription's name; every endpoint without it. */
  endpoint?: string;
  limit: number;
  /** The last delivery of the previous page. */
  after?: WebhookDeliveryPosition;
}

/** What an attempt came to, written with the attempt in one commit. */
export interface WebhookAttemptRecord {
  attempt: Omit<WebhookAttempt, 'attempt'>;
  /** Pending again until `nextAttemptAt`, or one of the final states. */
  next: { state: 'pending'; nextAttemptAt: number } | { state: 'delivered' | 'failed' | 'disabled' };
  lastError: string | null;
  /**
   * The endpoint answered 410: disable it for every process (its pending
   * deliveries end `disabled`, and later ones are created so). For a
   * subscription; a callback's 410 ends only its own delivery.
   */
  disableEndpoint: boolean;
}

/** A subscription's URL disabled by a `410 Gone`: nothing is sent there, by any process, until it is enabled. */
export interface DisabledWebhookEndpoint {
  /** The subscription's name. */
  endpoint: string;
  url: string;
  /** Epoch ms. */
  disabledAt: number;
  reason: string;
}

/**
 * What a manual re-send did (`resendWebhookDelivery`). `resent`: the delivery
 * was `failed` or `disabled` and is `pending` again. Otherwise nothing
 * changed: `unknown` (no such delivery), or `refused` because it is `pending`
 * (due or in flight: it is sent anyway), `delivered` (never sent twice), or
 * its endpoint is disabled at the URL it would go to (enable it first).
 */
export type WebhookResend =
  | { outcome: 'resent'; previousState: 'failed' | 'disabled'; delivery: WebhookDelivery }
  | { outcome: 'unknown' }
  | { outcome: 'refused'; reason: 'pending' | 'delivered' | 'endpoint-disabled' };

/** An operator's override of a route's health state; kept in the store so it survives restarts. */
export type RouteOverride = 'forced-async' | 'forced-sync';

export interface RekeyOptions {
  /** Rows per transaction. Default 500. */
  batchSize?: number;
  /** Told after every batch. */
  onProgress?: (progress: RekeyProgress) => void;
}

export interface RekeyProgress {
  /** `<table>.<part>`: operations.request, operations.result, idempotency_keys.answer, stale_copies. */
  part: string;
  scanned: number;
  resealed: number;
}

export interface RekeySummary {
  /** The key every stored value is now sealed under. */
  keyId: string;
  /** Rows sealed again, by part. */
  resealed: Record<string, number>;
  /** Key ids removed from store_keys. */
  forgotten: string[];
}

/**
 * The queue: captured operations, leased for replay under a token, finished,
 * retried, handed back, canceled and purged, and its depth and age by route
 * (the backlog bound and the metrics read them). The engine's capture and the
 * replay workers reach storage through it; the invariants of BRIEF.md §4 (no
 * acknowledged request lost, no silent double effect) are kept here.
 */
export interface OperationQueue {
  /**
   * Writes a new operation durably. Captures arriving together share one commit.
   * On a networked store a rejection can be ambiguous (the commit's answer was
   * lost): the operation may then exist although nobody was told; it is
   * replayed like any other, never acknowledged twice.
   */
  capture(operation: NewOperation): Promise<Operation>;
  /**
   * Claims due operations (highest priority, then earliest due first) whose
   * lease is free, each under a new token. Then hands back expired leases:
   * their holder is taken to have died mid-attempt, so that attempt is
   * counted, the operation marked `outcomeUnknown` and due again (from the
   * next call on), and the old token fenced off.
   */
  lease(request: LeaseRequest): Promise<LeasedOperation[]>;
  /**
   * The attempt got the upstream's final success: `Succeeded` with its response.
   * `attempt` (here and in retry, fail, release) is the attempt's record for the
   * attempt history, written in the same commit as the change it ends with.
   */
  complete(id: string, token: string, result: StoredResponse, attempt?: AttemptRecordInput): Promise<boolean>;
  /** The attempt failed in a retryable way: back in the queue until `nextAttemptAt`. */
  retry(id: string, token: string, record: RetryRecord, attempt?: AttemptRecordInput): Promise<boolean>;
  /** The operation ends `Failed`. */
  fail(id: string, token: string, record: FailRecord, attempt?: AttemptRecordInput): Promise<boolean>;
  /**
   * Hands a lease back (shutdown). `attemptInFlight`: the request was already
   * sent, so the attempt is counted and its outcome is unknown.
   */
  release(
    id: string,
    token: string,
    attemptInFlight: boolean,
    attempt?: AttemptRecordInput,
  ): Promise<boolean>;
  /**
   * The heartbeat of a running attempt: the lease now lasts until `until`.
   * False when the lease is no longer the caller's (it expired and was handed
   * back, or the operation finished): its final write will be refused too.
   */
  extendLease(id: string, token: string, until: number): Promise<boolean>;
  get(id: string): Promise<Operation | undefined>;
  counts(): Promise<StatusCounts>;
  /**
   * Cancels an operation that has not started: `NotStarted` and not leased
   * becomes `Canceled` (an event), atomically against leasing. Resolves true
   * when this call canceled it; false when it was unknown or past NotStarted.
   * `betweenAttempts` (operators) also cancels a `Running` operation waiting
   * for its next attempt, holding no lease.
   */
  cancel(id: string, options?: { betweenAttempts?: boolean }): Promise<boolean>;
  /**
   * Deletes terminal operations (their events, webhook deliveries, and Idempotency-Key records pointing at them) last changed before
   * `before` (epoch ms), at most `limit` of them; resolves with how many.
   * Retention: past it an operation is gone (404).
   */
  purge(before: number, limit: number): Promise<number>;
  /** Earliest `nextAttemptAt` of a waiting operation, for the workers' timer. */
  nextDueAt(): Promise<number | undefined>;
  /**
   * Whether the route's ordering key has an operation not finished: waiting, in flight, or
   * dead-lettered (a dead letter blocks its key until it is redriven, discarded or purged). A
   * live request of such a key is captured behind them, never sent ahead. One index probe.
   */
  orderingKeyPending(route: string, orderingKey: string): Promise<boolean>;
  /** Operations waiting (not terminal) and dead-lettered, by route; routes with neither are left out. */
  routeCounts(): Promise<Record<string, RouteCounts>>;
  /**
   * For each route with operations due at `now` (waiting and unleased with
   * `nextAttemptAt` ≤ now, or leased with an expired lease), the earliest such
   * due time, epoch ms; routes with none due are left out. Index-backed
   * (metrics read it at most once a second).
   */
  oldestDueByRoute(now: number): Promise<Record<string, number>>;
}

/**
 * Idempotency-Key records (docs/http-api.md): the gateway's claim on a
 * client's key, and the answer or operation kept for its duplicates.
 */
export interface IdempotencyKeys {
  /**
   * Claims an Idempotency-Key atomically across every process sharing the
   * store. Resolves undefined when this call now holds it (no record, or only
   * an expired one, or an in-progress one whose lock has lapsed); otherwise
   * the record in force, unchanged.
   */
  claimIdempotencyKey(claim: IdempotencyClaim): Promise<IdempotencyRecord | undefined>;
  /** The claimed request was answered synchronously: keep that answer for replay. No-op if the claim was lost. */
  completeIdempotencyKey(key: string, token: string, response: StoredResponse): Promise<void>;
  /** Forgets a claim whose request stored nothing (a gateway-local rejection), so a retry is processed anew. */
  releaseIdempotencyKey(key: string, token: string): Promise<void>;
  /** Deletes Idempotency-Key records expired at `now`, at most `limit`; resolves with how many. */
  purgeIdempotencyKeys(now: number, limit: number): Promise<number>;
}

/**
 * The event log: each operation's status changes in order, written in the
 * commit of the change, and a hint when a commit touched one. The source of
 * the status monitor's SSE and WebSocket streams.
 */
export interface EventLog {
  /** The operation's events after `afterSeq` (0: all of them), in order. */
  events(id: string, afterSeq: number): Promise<OperationEvent[]>;
  /**
   * Calls `listener(operationId)` after a commit touched that operation, in
   * this process and, on a shared store, in the others (PostgreSQL
   * LISTEN/NOTIFY). A hint, not a delivery: it may come late, twice or not at
   * all, so readers re-read `events` and poll as a backstop. Returns the
   * function that stops it.
   */
  watch(listener: (operationId: string) => void): () => void;
}

/**
 * The webhook outbox: deliveries created in the commit of a terminal status,
 * leased and recorded by the webhook dispatcher, shown and re-sent by
 * operators.
 */
export interface WebhookOutbox {
  /**
   * Claims due pending webhook deliveries (earliest due first) whose lease is
   * free or expired, for the given endpoints only; concurrent callers in any
   * process never get the same one. An expired lease counts the lost attempt.
   */
  leaseWebhookDeliveries(request: WebhookLeaseRequest): Promise<LeasedWebhookDelivery[]>;
  /** Writes an attempt and what follows it, fenced by the lease's token: false when the caller no longer holds it. */
  recordWebhookAttempt(
    key: WebhookDeliveryKey,
    token: string,
    record: WebhookAttemptRecord,
  ): Promise<boolean>;
  /** Hands a delivery's lease back (shutdown): due again at once, the attempt not counted. */
  releaseWebhookDelivery(key: WebhookDeliveryKey, token: string): Promise<boolean>;
  /** An operation's deliveries, each with its attempts in order; [] for none or an unknown id. */
  webhookDeliveries(operationId: string): Promise<Array<WebhookDelivery & { attemptLog: WebhookAttempt[] }>>;
  /**
   * The deliveries in `query.state` (to `query.endpoint` only, when given),
   * of every operation, newest first (created, then operation id, seq,
   * endpoint), after `query.after`, at most `query.limit`; without attempt
   * logs. Index range reads (migration 026): a page costs the same whatever
   * the outbox holds.
   */
  listWebhookDeliveries(query: WebhookDeliveryQuery): Promise<WebhookDelivery[]>;
  /** Earliest `nextAttemptAt` of a pending delivery to one of `endpoints`, for the dispatcher's timer. */
  nextWebhookDueAt(endpoints: readonly string[]): Promise<number | undefined>;
  /** The subscription URLs disabled by a 410, oldest first. */
  disabledWebhookEndpoints(): Promise<DisabledWebhookEndpoint[]>;
  /**
   * Enables a subscription again at every URL it was disabled at: deliveries
   * created from now on are pending. Those disabled meanwhile stay `disabled`
   * until each is re-sent. Resolves with what it enabled; [] when nothing of
   * that name was disabled.
   */
  enableWebhookEndpoint(endpoint: string): Promise<DisabledWebhookEndpoint[]>;
  /**
   * Manual replay: a `failed` or `disabled` delivery becomes `pending`, due at
   * once, with its attempts, attempt log and (derived) webhook-id kept; the
   * schedule goes on from its attempt count, so an exhausted one gets one more
   * attempt. `url`, when given, replaces the delivery's URL (a subscription
   * pointed elsewhere since). Atomic against leasing and recording: a delivery
   * disabled while an attempt was in flight stays held by that lease until it
   * runs out, so no delivery is ever leased twice at once.
   */
  resendWebhookDelivery(key: WebhookDeliveryKey, url?: string): Promise<WebhookResend>;
}

/**
 * What one process tells the others about a route, through the store:
 * operator overrides of the health state, paused replay, the health a
 * gateway last saw, and a drain brought forward when a probe passed.
 */
export interface RouteControls {
  /** Sets (or, with null, clears) a route's operator override. */
  setOverride(route: string, override: RouteOverride | null): Promise<void>;
  /** Every route override in force, by route name. */
  overrides(): Promise<Record<string, RouteOverride>>;
  /** Pauses (true) or resumes a route's replay, for every process sharing the store. */
  setReplayPaused(route: string, paused: boolean): Promise<void>;
  /** Routes whose replay is paused, with when (epoch ms). */
  pausedReplays(): Promise<Record<string, number>>;
  /** Writes a gateway's view of a route's health, for `spillway worker` processes to follow. */
  setRouteHealth(route: string, health: StoredRouteHealth): Promise<void>;
  /** Every route's health as last written by a gateway, by route name. */
  routeHealth(): Promise<Record<string, StoredRouteHealth>>;
  /**
   * Makes the route's waiting, unleased operations due now (those due later),
   * at most `limit` of them, first in replay order; resolves with how many.
   * A replay probe that passed brings the drain forward so it starts at once.
   */
  bringForward(route: string, limit?: number): Promise<number>;
}

/**
 * What operators see and do (the admin API and CLI, docs/operations.md):
 * operations listed, attempt histories, dead letters redriven or discarded,
 * ordering keys blocked by a dead letter.
 */
export interface OperatorViews {
  /** Operations matching `query`, newest first (created, then id), summarised without bodies; index-backed. */
  listOperations(query: OperationQuery): Promise<OperationSummary[]>;
  /** An operation's attempt history, in order; [] for none or an unknown id. */
  attemptLog(id: string): Promise<AttemptRecord[]>;
  /**
   * Sends a dead-lettered operation back for replay, atomically: `NotStarted`,
   * due now, no longer dead-lettered, outcome no longer unknown, with a fresh
   * retry budget counted from now (`redrivenAt`, `attemptsAtRedrive`). One whose
   * last attempt's outcome is unknown is redriven only with `includeOutcomeUnknown`.
   */
  redrive(id: string, options?: { includeOutcomeUnknown?: boolean }): Promise<RedriveResult>;
  /** Takes a dead-lettered operation off the dead-letter list; it stays `Failed` (no event). */
  discard(id: string): Promise<DiscardResult>;
  /** Ordering keys blocked by a dead letter at their head, oldest dead letter first, at most `limit`. */
  blockedOrderingKeys(limit: number): Promise<BlockedOrderingKey[]>;
}

/** Stale copies (stale-if-error, src/engine/stale-copies.ts; migration 022), bounded and evicted LRU. */
export interface StaleCopyStore {
  /**
   * Keeps `copy` as the copy of its resource and variant, unless the copy kept
   * there is newer (`storedAt`): answers that arrive out of order never roll a
   * copy back. Then evicts least recently used copies until at most
   * `bounds.maxEntries` copies of `bounds.maxBytes` bytes in all are kept;
   * resolves with how many were evicted.
   */
  keepStaleCopy(copy: StaleCopy, bounds: StaleCopyBounds): Promise<{ kept: boolean; evicted: number }>;
  /** Every variant kept of a resource (few: one per set of values of the fields its Vary names). */
  staleCopies(resource: string): Promise<StaleCopy[]>;
  /** A copy was answered with: it becomes the most recently used (LRU). */
  useStaleCopy(resource: string, variant: string, now: number): Promise<void>;
  /** Forgets every variant of a resource (its answer is no longer to be kept); resolves with how many. */
  dropStaleCopies(resource: string): Promise<number>;
  /** Deletes copies expired at `now`, at most `limit`, oldest first; resolves with how many. Index-backed. */
  purgeStaleCopies(now: number, limit: number): Promise<number>;
}

/** The store as a whole: closing it, and sealing every stored value under its newest key. */
export interface StoreLifecycle {
  close(): Promise<void>;
  /**
   * `spillway store rekey`: seals every stored request, result, kept
   * Idempotency-Key answer and stale copy under the newest store key (plaintext
   * rows too), a bounded batch per transaction, then deletes the other keys from
   * store_keys. Throws StoreKeyError when no key is set (src/store/rekey.ts).
   */
  rekey(options?: RekeyOptions): Promise<RekeySummary>;
}

/**
 * Every port at once: what each adapter implements and `openStore` returns.
 * A component asks only for the ports it uses (a replay worker needs no
 * Idempotency-Key records), so it can be given a narrower store.
 */
export interface OperationStore
  extends OperationQueue,
    IdempotencyKeys,
    EventLog,
    WebhookOutbox,
    RouteControls,
    OperatorViews,
    StaleCopyStore,
    StoreLifecycle {}

/** The last 2xx answer to a GET or HEAD, kept to answer with while the upstream cannot. */
export interface StaleCopy {
  /** Digest of tenant, method, path and query (src/policy/stale-if-error.ts). */
  resource: string;
  /** Digest of the values of the request fields `vary` names. */
  variant: string;
  route: string;
  /** The request fields (lower-case) the answer's Vary names. */
  vary: readonly string[];
  response: StoredResponse;
  /** Epoch ms the answer was received. */
  storedAt: number;
  /** Seconds: the upstream's own Age when it was received (RFC 9111 §4.2.3). */
  initialAge: number;
  /** Epoch ms past which it is never answered with (purged by retention). */
  expiresAt: number;
  /** Epoch ms it was last kept or answered with (LRU). */
  lastUsedAt: number;
}

export interface StaleCopyBounds {
  maxEntries: number;
  maxBytes: number;
}

/**
 * A route's health as a gateway last wrote it (docs/policy.md, "Replay and the
 * health state"): the last writer wins, each gateway deciding for itself.
 */
export interface StoredRouteHealth {
  state: 'sync' | 'diverting' | 'probing';
  /** Why it diverts: a trip rule, or the upstream's Retry-After (replay waits until `until`). */
  cause: 'trip' | 'retry-after' | null;
  /** Epoch ms the state began. */
  since: number;
  /** Epoch ms a diversion ends; null otherwise. */
  until: number | null;
}

/** How an attempt ended, in the attempt history. */
export type AttemptRecordOutcome =
  /** The upstream's success: the operation `Succeeded`. */
  | 'succeeded'
  /** Failed in a retryable way: another attempt is scheduled (or the failed sync attempt before a capture). */
  | 'retry'
  /** The operation ended `Failed` with it. */
  | 'failed'
  /** Abandoned mid-attempt at shutdown: the request was out, its outcome unknown. */
  | 'interrupted';

/** One attempt of an operation, kept with it. */
export interface AttemptRecord {
  /** 1, 2, 3… (the operation's attempt count when it ended); a number is missing for an attempt lost in a crash. */
  attempt: number;
  /** Epoch ms the request was sent. */
  startedAt: number;
  durationMs: number;
  outcome: AttemptRecordOutcome;
  /** The upstream's status, when it answered. */
  upstreamStatus: number | null;
  /** What went wrong, when something did. */
  error: string | null;
}

/** What the caller knows of an attempt; the store numbers it. */
export type AttemptRecordInput = Omit<AttemptRecord, 'attempt'>;

export interface OperationFilter {
  status?: OperationStatus;
  route?: string;
  /** True: only dead-lettered operations; false: only others. */
  deadLettered?: boolean;
}

export interface OperationQuery extends OperationFilter {
  limit: number;
  /** Only operations listed after this one (created before it, or then with a lower id): the page cursor. */
  after?: { createdAt: number; id: string };
}

/** An operation as a list shows it: no request or response bodies. */
export interface OperationSummary {
  id: string;
  route: string;
  method: string;
  path: string;
  status: OperationStatus;
  attempts: number;
  nextAttemptAt: number;
  /** An attempt is in flight (a lease is held). */
  leased: boolean;
  outcomeUnknown: boolean;
  error: OperationError | null;
  deadLetteredAt: number | null;
  failoverReason: string | null;
  orderingKey: string | null;
  /** Waiting behind an earlier, unfinished operation of its ordering key. */
  keyBlocked: boolean;
  createdAt: number;
  updatedAt: number;
}

export type RedriveResult =
  | { outcome: 'redriven'; operation: Operation }
  | { outcome: 'unknown' }
  /** Not dead-lettered (any more), or its outcome is unknown and `includeOutcomeUnknown` was not given. */
  | { outcome: 'refused'; reason: 'not-dead-lettered' | 'outcome-unknown'; operation: Operation };

export type DiscardResult =
  | { outcome: 'discarded'; operation: Operation }
  | { outcome: 'unknown' }
  | { outcome: 'refused'; reason: 'not-dead-lettered'; operation: Operation };

/** An ordering key whose head is a dead letter: nothing behind it replays until it is redriven or discarded. */
export interface BlockedOrderingKey {
  route: string;
  orderingKey: string;
  /** The dead letter at the head. */
  operationId: string;
  deadLetteredAt: number;
  /** Operations of the key waiting behind it. */
  waiting: number;
}

export interface RouteCounts {
  /** Not terminal: `NotStarted` or `Running`. */
  backlog: number;
  deadLettered: number;
}
