/**
 * The SQLite store as the gateway uses it: a SqliteStore on its own thread
 * (store-thread.ts), so that its commits (an fsync each, with
 * `synchronous=FULL`), sealing and long reads never stall the event loop that
 * proxies requests. Every verb becomes a message; it resolves when the store
 * thread answers, and a write is answered only once its batch's COMMIT
 * returned, as in-thread. Writes that arrive while a batch commits wait on
 * the store thread and share the next commit.
 *
 * The caller's clock stays the source of truth: each call carries its
 * `now()`. Errors arrive as the classes the in-thread store throws.
 */
import { Worker } from 'node:worker_threads';
import { type Clock, systemClock } from '../../clock.ts';
import { StoreUnavailableError } from '../../errors.ts';
import { capturedOperation } from '../operation-row.ts';
import type {
  AttemptRecord,
  AttemptRecordInput,
  BlockedOrderingKey,
  DisabledWebhookEndpoint,
  DiscardResult,
  FailRecord,
  IdempotencyClaim,
  IdempotencyRecord,
  LeasedOperation,
  LeasedWebhookDelivery,
  LeaseRequest,
  NewOperation,
  Operation,
  OperationEvent,
  OperationQuery,
  OperationStore,
  OperationSummary,
  RedriveResult,
  RekeyOptions,
  RekeyProgress,
  RekeySummary,
  RetryRecord,
  RouteCounts,
  RouteOverride,
  StaleCopy,
  StaleCopyBounds,
  StatusCounts,
  StoredResponse,
  StoredRouteHealth,
  WebhookAttempt,
  WebhookAttemptRecord,
  WebhookDelivery,
  WebhookDeliveryKey,
  WebhookDeliveryQuery,
  WebhookLeaseRequest,
  WebhookResend,
} from '../port.ts';
import type { SqliteStoreOptions } from './sqlite-store.ts';
import {
  type CaptureAnswer,
  receivedError,
  type ThreadCall,
  type ThreadMessage,
  type ThreadOpenOptions,
} from './thread-messages.ts';

interface PendingCall {
  resolve(value: unknown): void;
  reject(error: unknown): void;
  onProgress?: (progress: RekeyProgress) => void;
}

// From the sources the thread runs store-thread.ts (Node strips its types); from the built package, its .js.
const THREAD_ENTRY = new URL(
  import.meta.url.endsWith('.ts') ? './store-thread.ts' : './store-thread.js',
  import.meta.url,
);

/** Verbs the thread may take minutes to answer (a rekey runs batch after batch): calls after them go at once. */
const LONG_VERBS = new Set(['rekey']);

export class ThreadedSqliteStore implements OperationStore {
  readonly #thread: Worker;
  readonly #clock: Clock;
  readonly #onError: (error: unknown) => void;
  readonly #onCommit: ((writes: number) => void) | undefined;
  readonly #pending = new Map<number, PendingCall>();
  readonly #watchers = new Set<(operationId: string) => void>();
  readonly #exited: Promise<void>;
  #outbox: ThreadCall[] = [];
  /**
   * A message went to the thread and no answer has come back since: new calls
   * wait in the outbox and go as one message when that answer comes. A write
   * would wait for the thread's next commit anyway, and a read waits at most
   * for the commit under way; one message per commit instead of one per
   * request saves both threads about a tenth of a capture's CPU.
   */
  #awaitingAnswer = false;
  #nextId = 1;
  #closing: Promise<void> | undefined;
  /** Why verbs are refused: set once close() is called or the thread stopped. */
  #refusal: string | undefined;
  #ended = false;

  private constructor(thread: Worker, options: SqliteStoreOptions) {
    this.#thread = thread;
    this.#clock = options.clock ?? systemClock;
    this.#onCommit = options.onCommit;
    this.#onError =
      options.onError ??
      ((error) =>
        // Nobody listens: the process warning is the last resort, never silence.
        process.emitWarning(`Spillway store: ${(error as Error).message}`, { code: 'SPILLWAY_STORE_ERROR' }));
    this.#exited = new Promise((resolve) => thread.once('exit', () => resolve()));
    thread.on('message', (message: ThreadMessage) => this.#receive(message));
    thread.on('error', (error) => this.#stopped(error));
    thread.on('exit', (code) => this.#stopped(new Error(`the SQLite store thread exited (code ${code})`)));
    thread.unref(); // held only while a call waits for its answer
  }

  /**
   * Opens the file on a new store thread: resolves once it is open and
   * migrated, or rejects with what refused it (the lock held by another
   * Spillway, a missing store key, a file that cannot be created).
   */
  static open(options: SqliteStoreOptions): Promise<ThreadedSqliteStore> {
    const clock = options.clock ?? systemClock;
    const workerData: ThreadOpenOptions = {
      path: options.path,
      now: clock.now(),
      reportCommits: options.onCommit !== undefined,
      ...(options.maxSizeBytes === undefined ? {} : { maxSizeBytes: options.maxSizeBytes }),
      ...(options.exclusive ? { exclusive: true } : {}),
      ...(options.encryptionKeys
        ? { encryptionKeys: options.encryptionKeys.keys.map((key) => key.key.toString('base64')) }
        : {}),
    };
    const thread = new Worker(THREAD_ENTRY, { workerData });
    return new Promise((resolve, reject) => {
      const onExit = (code: number) =>
        reject(
          new StoreUnavailableError(
            `the SQLite store thread exited (code ${code}) while opening ${options.path}`,
          ),
        );
      thread.once('error', reject);
      thread.once('exit', onExit);
      thread.once('message', (message: ThreadMessage) => {
        thread.off('error', reject);
        thread.off('exit', onExit);
        if (message.kind === 'opened') resolve(new ThreadedSqliteStore(thread, options));
        else if (message.kind === 'open-failed') reject(receivedError(message.error));
        else reject(new Error(`the SQLite store thread said ${message.kind} before it opened`));
      });
    });
  }

  capture(operation: NewOperation): Promise<Operation> {
    const { request } = operation;
    // The thread answers only what the store decided (the time it wrote, which is its commit's, and
    // whether the operation waits behind its ordering key): the rest is the row every store writes
    // for a capture, made here instead of copied back.
    const sent = { ...operation, request: { ...request, body: ownBytes(request.body) } };
    return this.#call<CaptureAnswer>('capture', [sent]).then(({ createdAt, keyBlocked }) => ({
      ...capturedOperation(operation, createdAt),
      keyBlocked,
    }));
  }

  lease(request: LeaseRequest): Promise<LeasedOperation[]> {
    return this.#call('lease', [request]);
  }

  complete(
    id: string,
    token: string,
    result: StoredResponse,
    attempt?: AttemptRecordInput,
  ): Promise<boolean> {
    return this.#call('complete', [id, token, withOwnBody(result), attempt]);
  }

  retry(id: string, token: string, record: RetryRecord, attempt?: AttemptRecordInput): Promise<boolean> {
    return this.#call('retry', [id, token, record, attempt]);
  }

  fail(id: string, token: string, record: FailRecord, attempt?: AttemptRecordInput): Promise<boolean> {
    return this.#call('fail', [id, token, record, attempt]);
  }

  release(
    id: string,
    token: string,
    attemptInFlight: boolean,
    attempt?: AttemptRecordInput,
  ): Promise<boolean> {
    return this.#call('release', [id, token, attemptInFlight, attempt]);
  }

  extendLease(id: string, token: string, until: number): Promise<boolean> {
    return this.#call('extendLease', [id, token, until]);
  }

  get(id: string): Promise<Operation | undefined> {
    return this.#call('get', [id]);
  }

  counts(): Promise<StatusCounts> {
    return this.#call('counts', []);
  }

  cancel(id: string, options?: { betweenAttempts?: boolean }): Promise<boolean> {
    return this.#call('cancel', [id, options]);
  }

  purge(before: number, limit: number): Promise<number> {
    return this.#call('purge', [before, limit]);
  }

  claimIdempotencyKey(claim: IdempotencyClaim): Promise<IdempotencyRecord | undefined> {
    return this.#call('claimIdempotencyKey', [claim]);
  }

  completeIdempotencyKey(key: string, token: string, response: StoredResponse): Promise<void> {
    return this.#call('completeIdempotencyKey', [key, token, withOwnBody(response)]);
  }

  releaseIdempotencyKey(key: string, token: string): Promise<void> {
    return this.#call('releaseIdempotencyKey', [key, token]);
  }

  purgeIdempotencyKeys(now: number, limit: number): Promise<number> {
    return this.#call('purgeIdempotencyKeys', [now, limit]);
  }

  events(id: string, afterSeq: number): Promise<OperationEvent[]> {
    return this.#call('events', [id, afterSeq]);
  }

  watch(listener: (operationId: string) => void): () => void {
    this.#watchers.add(listener);
    return () => this.#watchers.delete(listener);
  }

  setOverride(route: string, override: RouteOverride | null): Promise<void> {
    return this.#call('setOverride', [route, override]);
  }

  overrides(): Promise<Record<string, RouteOverride>> {
    return this.#call('overrides', []);
  }

  nextDueAt(): Promise<number | undefined> {
    return this.#call('nextDueAt', []);
  }

  orderingKeyPending(route: string, orderingKey: string): Promise<boolean> {
    return this.#call('orderingKeyPending', [route, orderingKey]);
  }

  blockedOrderingKeys(limit: number): Promise<BlockedOrderingKey[]> {
    return this.#call('blockedOrderingKeys', [limit]);
  }

  leaseWebhookDeliveries(request: WebhookLeaseRequest): Promise<LeasedWebhookDelivery[]> {
    return this.#call('leaseWebhookDeliveries', [request]);
  }

  recordWebhookAttempt(
    key: WebhookDeliveryKey,
    token: string,
    record: WebhookAttemptRecord,
  ): Promise<boolean> {
    return this.#call('recordWebhookAttempt', [key, token, record]);
  }

  releaseWebhookDelivery(key: WebhookDeliveryKey, token: string): Promise<boolean> {
    return this.#call('releaseWebhookDelivery', [key, token]);
  }

  webhookDeliveries(operationId: string): Promise<Array<WebhookDelivery & { attemptLog: WebhookAttempt[] }>> {
    return this.#call('webhookDeliveries', [operationId]);
  }

  listWebhookDeliveries(query: WebhookDeliveryQuery): Promise<WebhookDelivery[]> {
    return this.#call('listWebhookDeliveries', [query]);
  }

  nextWebhookDueAt(endpoints: readonly string[]): Promise<number | undefined> {
    return this.#call('nextWebhookDueAt', [endpoints]);
  }

  disabledWebhookEndpoints(): Promise<DisabledWebhookEndpoint[]> {
    return this.#call('disabledWebhookEndpoints', []);
  }

  enableWebhookEndpoint(endpoint: string): Promise<DisabledWebhookEndpoint[]> {
    return this.#call('enableWebhookEndpoint', [endpoint]);
  }

  resendWebhookDelivery(key: WebhookDeliveryKey, url?: string): Promise<WebhookResend> {
    return this.#call('resendWebhookDelivery', [key, url]);
  }

  rekey(options: RekeyOptions = {}): Promise<RekeySummary> {
    const { batchSize, onProgress } = options;
    return this.#call('rekey', [{ batchSize, progress: onProgress !== undefined }], {
      ...(onProgress ? { onProgress } : {}),
    });
  }

  listOperations(query: OperationQuery): Promise<OperationSummary[]> {
    return this.#call('listOperations', [query]);
  }

  attemptLog(id: string): Promise<AttemptRecord[]> {
    return this.#call('attemptLog', [id]);
  }

  redrive(id: string, options?: { includeOutcomeUnknown?: boolean }): Promise<RedriveResult> {
    return this.#call('redrive', [id, options]);
  }

  discard(id: string): Promise<DiscardResult> {
    return this.#call('discard', [id]);
  }

  routeCounts(): Promise<Record<string, RouteCounts>> {
    return this.#call('routeCounts', []);
  }

  oldestDueByRoute(now: number): Promise<Record<string, number>> {
    return this.#call('oldestDueByRoute', [now]);
  }

  setReplayPaused(route: string, paused: boolean): Promise<void> {
    return this.#call('setReplayPaused', [route, paused]);
  }

  pausedReplays(): Promise<Record<string, number>> {
    return this.#call('pausedReplays', []);
  }

  bringForward(route: string, limit?: number): Promise<number> {
    return this.#call('bringForward', [route, limit]);
  }

  setRouteHealth(route: string, health: StoredRouteHealth): Promise<void> {
    return this.#call('setRouteHealth', [route, health]);
  }

  routeHealth(): Promise<Record<string, StoredRouteHealth>> {
    return this.#call('routeHealth', []);
  }

  keepStaleCopy(copy: StaleCopy, bounds: StaleCopyBounds): Promise<{ kept: boolean; evicted: number }> {
    return this.#call('keepStaleCopy', [{ ...copy, response: withOwnBody(copy.response) }, bounds]);
  }

  staleCopies(resource: string): Promise<StaleCopy[]> {
    return this.#call('staleCopies', [resource]);
  }

  useStaleCopy(resource: string, variant: string, now: number): Promise<void> {
    return this.#call('useStaleCopy', [resource, variant, now]);
  }

  dropStaleCopies(resource: string): Promise<number> {
    return this.#call('dropStaleCopies', [resource]);
  }

  purgeStaleCopies(now: number, limit: number): Promise<number> {
    return this.#call('purgeStaleCopies', [now, limit]);
  }

  /** Commits what is queued, closes the file, releases its lock and ends the thread. Safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#refusal === undefined) {
        const closed = this.#call('close', []);
        this.#refusal = 'The store is closed.';
        await closed;
      }
      this.#thread.ref(); // the caller waits for the lock's release: keep the process up until then
      await this.#exited;
    })();
    return this.#closing;
  }

  #call<T>(verb: string, args: unknown[], extra: Omit<PendingCall, 'resolve' | 'reject'> = {}): Promise<T> {
    if (this.#refusal !== undefined) return Promise.reject(new StoreUnavailableError(this.#refusal));
    const id = this.#nextId++;
    // Trailing undefined arguments are dropped: the store's defaults apply, as for a direct call.
    while (args.length > 0 && args[args.length - 1] === undefined) args.pop();
    return new Promise<T>((resolve, reject) => {
      if (this.#pending.size === 0) this.#thread.ref();
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject, ...extra });
      // The calls of one turn go as one message.
      if (this.#outbox.length === 0 && !this.#awaitingAnswer) queueMicrotask(() => this.#post());
      this.#outbox.push({ id, verb, args, now: this.#clock.now() });
    });
  }

  #post(): void {
    const calls = this.#outbox;
    if (calls.length === 0) return;
    this.#outbox = [];
    try {
      this.#thread.postMessage(calls);
      this.#awaitingAnswer = calls.some((call) => !LONG_VERBS.has(call.verb));
    } catch (error) {
      // A value the thread boundary cannot copy: those calls fail, the store goes on.
      for (const call of calls) this.#settle(call.id, (pending) => pending.reject(error));
    }
  }

  #receive(message: ThreadMessage): void {
    switch (message.kind) {
      case 'replies': {
        // What waited goes first: the thread starts its next batch while this one's callers resume.
        if (this.#awaitingAnswer) {
          this.#awaitingAnswer = false;
          this.#post();
        }
        for (const writes of message.commits) this.#onCommit?.(writes);
        // As in-thread: watchers hear of a commit before its writers' awaits resume.
        for (const id of message.touched) for (const watcher of this.#watchers) watcher(id);
        for (const reply of message.replies) {
          this.#settle(reply.id, (pending) => {
            if (!reply.ok) pending.reject(receivedError(reply.error));
            else pending.resolve(reply.value);
          });
        }
        return;
      }
      case 'error':
        this.#onError(receivedError(message.error));
        return;
      case 'progress':
        this.#pending.get(message.id)?.onProgress?.(message.progress as RekeyProgress);
        return;
      default:
        this.#onError(new Error(`the SQLite store thread sent an unexpected ${message.kind} message`));
    }
  }

  #settle(id: number, settle: (pending: PendingCall) => void): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#thread.unref();
    settle(pending);
  }

  /** The thread ended or failed: whatever waits on it is refused, never left hanging. */
  #stopped(error: Error): void {
    if (this.#ended) return; // 'error' is followed by 'exit'
    this.#ended = true;
    const expected = this.#refusal === 'The store is closed.' && this.#pending.size === 0;
    this.#refusal ??= 'The SQLite store thread stopped.';
    if (expected) return;
    const refusal = new StoreUnavailableError(`The SQLite store thread stopped: ${error.message}`, {
      cause: error,
    });
    for (const id of [...this.#pending.keys()]) this.#settle(id, (pending) => pending.reject(refusal));
    this.#onError(refusal);
  }
}

/**
 * The bytes alone, as they should cross to the store thread. A small Buffer is
 * often a slice of Node's shared allocation pool (Buffer.concat of a request
 * body is), and a message copies a view's whole ArrayBuffer, on both sides:
 * 64 KiB for a 200-byte body, about 12 µs of the gateway's CPU per message.
 */
function ownBytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? bytes
    : new Uint8Array(bytes);
}

const withOwnBody = (response: StoredResponse): StoredResponse => ({
  ...response,
  body: ownBytes(response.body),
});
