/**
 * The embedded OperationStore on the built-in `node:sqlite`.
 *
 * Durability: WAL with `synchronous=FULL`, so a commit has reached the disk
 * when COMMIT returns; no verb resolves before its commit.
 *
 * Group commit: every write is queued and the queue is flushed in one
 * transaction on the next turn of the event loop. Writes that arrive while a
 * commit is being fsync'd wait in the queue and share the next commit, so the
 * fsync cost is paid per batch, not per capture. Each write runs inside its own
 * savepoint: one failing write (a duplicate id, say) does not sink its batch,
 * and a failed COMMIT rejects the whole batch, leaving nothing half-written.
 *
 * One writer: this process owns the file (WAL allows readers beside it).
 */
import { closeSync, openSync } from 'node:fs';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { type Clock, systemClock } from '../../clock.ts';
import { StoredValueUnreadableError, StoreUnavailableError } from '../../errors.ts';
import { sqliteValues } from '../dialect-values.ts';
import { readMigrations } from '../migrations.ts';
import {
  capturedOperation,
  toIdempotencyRecord as idempotencyRecordOf,
  toLeasedOperation as leasedOperationOf,
  toOperation as operationOf,
  replayOrder,
  toOperationEvent,
} from '../operation-row.ts';
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
  OperationStatus,
  OperationStore,
  OperationSummary,
  RedriveResult,
  RekeyOptions,
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
import { emptyStatusCounts } from '../port.ts';
import { type RekeyTransaction, rekeyStoredValues } from '../rekey.ts';
import { checkStoreKeys, MessageSealer, messageRow, type StoreKeyring } from '../sealed-values.ts';
import { prepareOperatorActions } from './operator-actions.ts';
import { prepareRouteDrain } from './route-drain.ts';
import { prepareStaleCopies } from './stale-copies.ts';
import { StoreLock } from './store-lock.ts';
import { prepareWebhookOutbox } from './webhook-outbox.ts';

export interface SqliteStoreOptions {
  /** File path, or `:memory:` for tests that do not need durability. */
  path: string;
  clock?: Clock;
  /** Upper bound on the file's size; captures past it answer 503. Default: unbounded. */
  maxSizeBytes?: number;
  /** Hold `<path>.lock` while open, refusing a second writer (store-lock.ts). A gateway sets it; tests that inspect a file do not. */
  exclusive?: boolean;
  /** Encrypt request and response content at rest under these keys, newest first (sealed-values.ts). Default: plaintext. */
  encryptionKeys?: StoreKeyring;
  /** Told of what fails outside a verb's own answer: a leased row that cannot be decrypted (then skipped). */
  onError?: (error: unknown) => void;
  /** Told the number of writes in each batch once its COMMIT returned (tests and the bench watch batching). */
  onCommit?: (writes: number) => void;
}

interface QueuedWrite {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type Row = Record<string, SQLInputValue>;

// SQLite primary result codes that mean "this store cannot take writes now".
const UNAVAILABLE_CODES = new Set([
  5 /* BUSY */, 8 /* READONLY */, 10 /* IOERR */, 13 /* FULL */, 14 /* CANTOPEN */,
]);

export class SqliteStore implements OperationStore {
  readonly #db: DatabaseSync;
  readonly #clock: Clock;
  readonly #sql: ReturnType<typeof prepareStatements>;
  readonly #webhooks: ReturnType<typeof prepareWebhookOutbox>;
  readonly #operator: ReturnType<typeof prepareOperatorActions>;
  readonly #drain: ReturnType<typeof prepareRouteDrain>;
  readonly #stale: ReturnType<typeof prepareStaleCopies>;
  readonly #sealer: MessageSealer;
  readonly #onError: (error: unknown) => void;
  readonly #onCommit: ((writes: number) => void) | undefined;
  #queue: QueuedWrite[] = [];
  /** Operations the current batch touched: their watchers hear of them once it commits. */
  #touched = new Set<string>();
  readonly #watchers = new Set<(operationId: string) => void>();
  #flushScheduled = false;
  #closed = false;
  readonly #lock: StoreLock | undefined;

  constructor(options: SqliteStoreOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#sealer = new MessageSealer(options.encryptionKeys);
    this.#onCommit = options.onCommit;
    this.#onError =
      options.onError ??
      ((error) =>
        // Nobody listens: the process warning is the last resort, never silence.
        process.emitWarning(`Spillway store: ${(error as Error).message}`, { code: 'SPILLWAY_STORE_ERROR' }));
    const onDisk = options.path !== ':memory:';
    this.#lock = onDisk && options.exclusive ? StoreLock.acquire(options.path) : undefined;
    let opened: DatabaseSync | undefined;
    try {
      // It holds request bodies and Authorization headers: owner only. SQLite gives -wal and -shm the same mode.
      if (onDisk) closeSync(openSync(options.path, 'a', 0o600));
      this.#db = opened = new DatabaseSync(options.path);
      this.#db.exec('PRAGMA journal_mode = WAL');
      this.#db.exec('PRAGMA synchronous = FULL');
      this.#db.exec('PRAGMA busy_timeout = 5000');
      this.#db.exec('PRAGMA foreign_keys = ON');
      if (options.maxSizeBytes !== undefined) {
        const pageSize = Number((this.#db.prepare('PRAGMA page_size').get() as Row).page_size);
        this.#db.exec(`PRAGMA max_page_count = ${Math.max(1, Math.floor(options.maxSizeBytes / pageSize))}`);
      }
      migrate(this.#db);
      this.#sql = prepareStatements(this.#db);
      this.#webhooks = prepareWebhookOutbox(this.#db);
      this.#operator = prepareOperatorActions(this.#db);
      this.#drain = prepareRouteDrain(this.#db);
      this.#stale = prepareStaleCopies(this.#db, this.#sealer, this.#onError);
      this.#recordKeys(options.path);
    } catch (error) {
      // A store that failed to open holds nothing: neither the file nor its lock.
      if (opened?.isOpen) opened.close();
      this.#lock?.release();
      throw error;
    }
  }

  capture(op: NewOperation): Promise<Operation> {
    return this.#write(() => {
      const now = this.#clock.now();
      const row = capturedOperation(op, now);
      this.#touched.add(row.id);
      const request = this.#sealer.seal(row.request.headers, row.request.body, messageRow.request(row.id));
      this.#sql.insert.run(
        ...captureArguments({
          id: row.id,
          route: row.route,
          method: row.request.method,
          path: row.request.path,
          query: row.request.query,
          request_headers: request.headers,
          request_body: request.body,
          status: row.status,
          attempts: row.attempts,
          next_attempt_at: row.nextAttemptAt,
          lease_owner: row.leaseOwner,
          lease_expires_at: row.leaseExpiresAt,
          lease_token: op.lease?.token ?? null,
          outcome_unknown: row.outcomeUnknown ? 1 : 0,
          priority: row.priority,
          idempotency_key: row.idempotencyKey,
          tenant: row.tenant,
          callback_url: row.callbackUrl,
          webhook_subscriptions: op.webhookSubscriptions?.length
            ? JSON.stringify(op.webhookSubscriptions)
            : null,
          traceparent: row.traceparent,
          tracestate: row.tracestate,
          failover_reason: row.failoverReason,
          ordering_key: row.orderingKey,
          created_at: now,
        }),
      );
      // Placed at the end of its key's queue by the INSERT itself (blocked behind an unfinished one).
      if (row.orderingKey !== null)
        row.keyBlocked = Number((this.#sql.keyBlocked.get({ id: row.id }) as Row).key_blocked) === 1;
      if (op.firstAttempt) this.#operator.logAttempt(row.id, op.firstAttempt);
      if (op.idempotency) this.#sql.acceptKey.run({ ...op.idempotency, id: row.id });
      return row;
    }) as Promise<Operation>;
  }

  lease({
    owner,
    limit,
    leaseMs,
    leaseMsByRoute = {},
    excludeRoutes = [],
    routes,
    functions = [],
    proxiedRoutes = true,
  }: LeaseRequest): Promise<LeasedOperation[]> {
    return this.#write(() => {
      const now = this.#clock.now();
      const leasable = (route: string) =>
        !excludeRoutes.includes(route) &&
        (routes === undefined || routes.includes(route)) &&
        (route.startsWith('fn:') ? functions.includes(route) : proxiedRoutes);
      const leased: LeasedOperation[] = [];
      for (const { id, route } of dueInReplayOrder(this.#sql, now, limit, leasable)) {
        // A row this process cannot decrypt is left as it was (its lease and event undone) and reported:
        // the others are leased, and the operator adds the key the error names.
        this.#db.exec('SAVEPOINT lease_one');
        const row = this.#sql.leaseOne.get({
          id,
          owner,
          now,
          expires: now + (leaseMsByRoute[route] ?? leaseMs),
        }) as Row;
        try {
          leased.push(toLeasedOperation(row, this.#sealer));
          this.#db.exec('RELEASE lease_one');
          this.#touched.add(id);
        } catch (error) {
          this.#db.exec('ROLLBACK TO lease_one');
          this.#db.exec('RELEASE lease_one');
          if (!(error instanceof StoredValueUnreadableError)) throw error;
          this.#onError(error);
        }
      }
      // After leasing, as the PostgreSQL adapter's one statement does: these are leased from the next call on.
      this.#sql.handBackExpired.run({ now, limit: HAND_BACK_BATCH });
      return leased.sort(replayOrder);
    }) as Promise<LeasedOperation[]>;
  }

  complete(
    id: string,
    token: string,
    result: StoredResponse,
    attempt?: AttemptRecordInput,
  ): Promise<boolean> {
    return this.#changed(
      this.#sql.complete,
      { id, token, now: this.#clock.now(), ...resultColumns(this.#sealer, id, result) },
      attempt,
    );
  }

  retry(id: string, token: string, record: RetryRecord, attempt?: AttemptRecordInput): Promise<boolean> {
    return this.#changed(
      this.#sql.retry,
      {
        id,
        token,
        now: this.#clock.now(),
        next_attempt_at: record.nextAttemptAt,
        error: JSON.stringify(record.error),
        outcome_unknown: record.outcomeUnknown ? 1 : 0,
      },
      attempt,
    );
  }

  fail(id: string, token: string, record: FailRecord, attempt?: AttemptRecordInput): Promise<boolean> {
    const now = this.#clock.now();
    return this.#changed(
      this.#sql.fail,
      {
        id,
        token,
        now,
        error: JSON.stringify(record.error),
        dead_lettered_at: record.deadLetter ? now : null,
        counted: record.countsAsAttempt ? 1 : 0,
        ...resultColumns(this.#sealer, id, record.result),
      },
      attempt,
    );
  }

  release(
    id: string,
    token: string,
    attemptInFlight: boolean,
    attempt?: AttemptRecordInput,
  ): Promise<boolean> {
    return this.#changed(
      this.#sql.release,
      { id, token, now: this.#clock.now(), in_flight: attemptInFlight ? 1 : 0 },
      attempt,
    );
  }

  extendLease(id: string, token: string, until: number): Promise<boolean> {
    return this.#write(
      () => Number(this.#sql.extendLease.run({ id, token, until }).changes) === 1,
    ) as Promise<boolean>;
  }

  async get(id: string): Promise<Operation | undefined> {
    this.#assertOpen();
    const row = this.#sql.get.get({ id }) as Row | undefined;
    return row ? toOperation(row, this.#sealer) : undefined;
  }

  async counts(): Promise<StatusCounts> {
    this.#assertOpen();
    const counts = emptyStatusCounts();
    for (const row of this.#sql.counts.all() as Row[]) {
      counts[row.status as OperationStatus] += Number(row.n);
      if (Number(row.dead_lettered) === 1) counts.deadLettered += Number(row.n);
    }
    return counts;
  }

  setOverride(route: string, override: RouteOverride | null): Promise<void> {
    return this.#write(() => {
      if (override === null) this.#sql.clearOverride.run({ route });
      else this.#sql.setOverride.run({ route, override, now: this.#clock.now() });
    }) as Promise<void>;
  }

  async overrides(): Promise<Record<string, RouteOverride>> {
    this.#assertOpen();
    const rows = this.#sql.overrides.all() as Row[];
    return Object.fromEntries(rows.map((row) => [String(row.route), row.override as RouteOverride]));
  }

  purge(before: number, limit: number): Promise<number> {
    return this.#write(() => Number(this.#sql.purge.run({ before, limit }).changes)) as Promise<number>;
  }

  claimIdempotencyKey(claim: IdempotencyClaim): Promise<IdempotencyRecord | undefined> {
    return this.#write(() => {
      this.#sql.claimKey.run({ ...claim, now: this.#clock.now() });
      const row = this.#sql.getKey.get({ key: claim.key }) as Row;
      return row.token === claim.token ? undefined : toIdempotencyRecord(row, this.#sealer);
    }) as Promise<IdempotencyRecord | undefined>;
  }

  completeIdempotencyKey(key: string, token: string, response: StoredResponse): Promise<void> {
    return this.#write(() => {
      this.#sql.completeKey.run({ key, token, ...responseColumns(this.#sealer, key, response) });
    }) as Promise<void>;
  }

  releaseIdempotencyKey(key: string, token: string): Promise<void> {
    return this.#write(() => {
      this.#sql.releaseKey.run({ key, token });
    }) as Promise<void>;
  }

  purgeIdempotencyKeys(now: number, limit: number): Promise<number> {
    return this.#write(() => Number(this.#sql.purgeKeys.run({ now, limit }).changes)) as Promise<number>;
  }

  cancel(id: string, options: { betweenAttempts?: boolean } = {}): Promise<boolean> {
    return this.#changed(this.#sql.cancel, {
      id,
      now: this.#clock.now(),
      between: options.betweenAttempts ? 1 : 0,
    });
  }

  async events(id: string, afterSeq: number): Promise<OperationEvent[]> {
    this.#assertOpen();
    const rows = this.#sql.events.all({ id, after: afterSeq }) as Row[];
    return rows.map((row) => toOperationEvent(id, row, sqliteValues));
  }

  watch(listener: (operationId: string) => void): () => void {
    this.#watchers.add(listener);
    return () => this.#watchers.delete(listener);
  }

  async orderingKeyPending(route: string, orderingKey: string): Promise<boolean> {
    this.#assertOpen();
    return this.#sql.keyPending.get({ route, ordering_key: orderingKey }) !== undefined;
  }

  async blockedOrderingKeys(limit: number): Promise<BlockedOrderingKey[]> {
    this.#assertOpen();
    return (this.#sql.blockedKeys.all({ limit }) as Row[]).map((row) => ({
      route: String(row.route),
      orderingKey: String(row.ordering_key),
      operationId: String(row.id),
      deadLetteredAt: Number(row.dead_lettered_at),
      waiting: Number(row.waiting),
    }));
  }

  async nextDueAt(): Promise<number | undefined> {
    this.#assertOpen();
    // The first due time of each (priority, route) group (a seek each), and the first lease to run out.
    let at = (this.#sql.nextLeaseExpiry.get() as Row).at as number | null;
    for (const group of dueGroups(this.#sql)) {
      const first = (this.#sql.firstDueInGroup.get(group) as Row).at as number | null;
      if (first !== null && (at === null || first < at)) at = first;
    }
    return at === null ? undefined : Number(at);
  }

  leaseWebhookDeliveries(request: WebhookLeaseRequest): Promise<LeasedWebhookDelivery[]> {
    return this.#write(() => this.#webhooks.lease(request, this.#clock.now())) as Promise<
      LeasedWebhookDelivery[]
    >;
  }

  recordWebhookAttempt(
    key: WebhookDeliveryKey,
    token: string,
    record: WebhookAttemptRecord,
  ): Promise<boolean> {
    return this.#write(() =>
      this.#webhooks.record(key, token, record, this.#clock.now()),
    ) as Promise<boolean>;
  }

  releaseWebhookDelivery(key: WebhookDeliveryKey, token: string): Promise<boolean> {
    return this.#write(() => this.#webhooks.release(key, token, this.#clock.now())) as Promise<boolean>;
  }

  async webhookDeliveries(
    operationId: string,
  ): Promise<Array<WebhookDelivery & { attemptLog: WebhookAttempt[] }>> {
    this.#assertOpen();
    return this.#webhooks.deliveries(operationId);
  }

  async listWebhookDeliveries(query: WebhookDeliveryQuery): Promise<WebhookDelivery[]> {
    this.#assertOpen();
    return this.#webhooks.list(query);
  }

  async nextWebhookDueAt(endpoints: readonly string[]): Promise<number | undefined> {
    this.#assertOpen();
    return this.#webhooks.nextDue(endpoints);
  }

  async disabledWebhookEndpoints(): Promise<DisabledWebhookEndpoint[]> {
    this.#assertOpen();
    return this.#webhooks.disabledEndpoints();
  }

  enableWebhookEndpoint(endpoint: string): Promise<DisabledWebhookEndpoint[]> {
    return this.#write(() => this.#webhooks.enable(endpoint)) as Promise<DisabledWebhookEndpoint[]>;
  }

  resendWebhookDelivery(key: WebhookDeliveryKey, url?: string): Promise<WebhookResend> {
    return this.#write(() => {
      const resend = this.#webhooks.resend(key, url, this.#clock.now());
      // Its watchers include the dispatcher, which looks for the delivery now due.
      if (resend.outcome === 'resent') this.#touched.add(key.operationId);
      return resend;
    }) as Promise<WebhookResend>;
  }

  // Operator actions and views (operator-actions.ts).

  async listOperations(query: OperationQuery): Promise<OperationSummary[]> {
    this.#assertOpen();
    return this.#operator.list(query);
  }

  async attemptLog(id: string): Promise<AttemptRecord[]> {
    this.#assertOpen();
    return this.#operator.attemptLog(id);
  }

  redrive(id: string, options: { includeOutcomeUnknown?: boolean } = {}): Promise<RedriveResult> {
    return this.#write((): RedriveResult => {
      const redriven = this.#operator.redrive(id, options.includeOutcomeUnknown === true, this.#clock.now());
      const row = this.#sql.get.get({ id }) as Row | undefined;
      if (!row) return { outcome: 'unknown' };
      const operation = toOperation(row, this.#sealer);
      if (redriven) {
        this.#touched.add(id);
        return { outcome: 'redriven', operation };
      }
      const reason = operation.deadLetteredAt === null ? 'not-dead-lettered' : 'outcome-unknown';
      return { outcome: 'refused', reason, operation };
    }) as Promise<RedriveResult>;
  }

  discard(id: string): Promise<DiscardResult> {
    return this.#write((): DiscardResult => {
      const discarded = this.#operator.discard(id, this.#clock.now());
      const row = this.#sql.get.get({ id }) as Row | undefined;
      if (!row) return { outcome: 'unknown' };
      const operation = toOperation(row, this.#sealer);
      if (discarded) this.#touched.add(id);
      return discarded
        ? { outcome: 'discarded', operation }
        : { outcome: 'refused', reason: 'not-dead-lettered', operation };
    }) as Promise<DiscardResult>;
  }

  async oldestDueByRoute(now: number): Promise<Record<string, number>> {
    this.#assertOpen();
    const oldest: Record<string, number> = {};
    const keep = (route: string, at: number) => {
      if (at <= now && (oldest[route] === undefined || at < oldest[route])) oldest[route] = at;
    };
    for (const group of dueGroups(this.#sql)) {
      const first = (this.#sql.firstDueInGroup.get(group) as Row).at;
      if (first !== null) keep(String(group.route), Number(first));
    }
    for (const row of this.#sql.expiredLeasesByRoute.all({ now }) as Row[])
      keep(String(row.route), Number(row.at));
    return oldest;
  }

  async routeCounts(): Promise<Record<string, RouteCounts>> {
    this.#assertOpen();
    return this.#operator.routeCounts();
  }

  setReplayPaused(route: string, paused: boolean): Promise<void> {
    return this.#write(() =>
      this.#operator.setReplayPaused(route, paused, this.#clock.now()),
    ) as Promise<void>;
  }

  async pausedReplays(): Promise<Record<string, number>> {
    this.#assertOpen();
    return this.#operator.pausedReplays();
  }

  bringForward(route: string, limit = Number.MAX_SAFE_INTEGER): Promise<number> {
    return this.#write(() => {
      // Replay order: the route's groups from the highest priority down, each in due order.
      const now = this.#clock.now();
      let brought = 0;
      for (const group of dueGroups(this.#sql)) {
        if (group.route !== route || brought >= limit) continue;
        brought += this.#drain.bringForward(group, limit - brought, now);
      }
      return brought;
    }) as Promise<number>;
  }

  setRouteHealth(route: string, health: StoredRouteHealth): Promise<void> {
    return this.#write(() => this.#drain.setRouteHealth(route, health, this.#clock.now())) as Promise<void>;
  }

  async routeHealth(): Promise<Record<string, StoredRouteHealth>> {
    this.#assertOpen();
    return this.#drain.routeHealth();
  }

  keepStaleCopy(copy: StaleCopy, bounds: StaleCopyBounds): Promise<{ kept: boolean; evicted: number }> {
    return this.#write(() => this.#stale.keep(copy, bounds)) as Promise<{ kept: boolean; evicted: number }>;
  }

  async staleCopies(resource: string): Promise<StaleCopy[]> {
    this.#assertOpen();
    return this.#stale.copies(resource);
  }

  useStaleCopy(resource: string, variant: string, now: number): Promise<void> {
    return this.#write(() => this.#stale.use(resource, variant, now)) as Promise<void>;
  }

  dropStaleCopies(resource: string): Promise<number> {
    return this.#write(() => this.#stale.drop(resource)) as Promise<number>;
  }

  purgeStaleCopies(now: number, limit: number): Promise<number> {
    return this.#write(() => this.#stale.purge(now, limit)) as Promise<number>;
  }

  /**
   * One batch per transaction, taken between write batches: the work has no
   * real await (statements and crypto are synchronous), so no flush runs inside it.
   */
  async rekey(options?: RekeyOptions): Promise<RekeySummary> {
    this.#assertOpen();
    if (this.#queue.length > 0) this.#flush();
    const db = this.#db;
    const tx: RekeyTransaction = {
      all: async (sql, params) => db.prepare(sql).all(...(params as SQLInputValue[])) as Row[],
      run: async (sql, params) => {
        db.prepare(sql).run(...(params as SQLInputValue[]));
      },
    };
    // Overwritten values are zeroed in the file, and the WAL is emptied at the end: otherwise the
    // plaintext a row held before would stay on disk in freed space until SQLite reused it.
    const secureDelete = Number((db.prepare('PRAGMA secure_delete').get() as Row).secure_delete);
    db.exec('PRAGMA secure_delete = ON');
    try {
      const summary = await this.#rekeyIn(db, tx, options);
      db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
      return summary;
    } finally {
      db.exec(`PRAGMA secure_delete = ${secureDelete ? 'ON' : 'OFF'}`);
    }
  }

  #rekeyIn(db: DatabaseSync, tx: RekeyTransaction, options: RekeyOptions | undefined): Promise<RekeySummary> {
    return rekeyStoredValues(
      {
        transaction: async (work) => {
          db.exec('BEGIN IMMEDIATE');
          try {
            const value = await work(tx);
            db.exec('COMMIT');
            return value;
          } catch (error) {
            if (db.isTransaction) db.exec('ROLLBACK');
            throw error;
          }
        },
        json: (value) => JSON.parse(String(value)),
        lockRows: '',
      },
      this.#sealer,
      options,
    );
  }

  /** Flushes queued writes, then closes the file. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#queue.length > 0) this.#flush();
    this.#closed = true;
    this.#db.close();
    this.#lock?.release();
  }

  /** Records the key new values are sealed under, then refuses to open if any recorded key is not listed. */
  #recordKeys(location: string): void {
    const newest = this.#sealer.newestKeyId;
    if (newest) {
      this.#db
        .prepare('INSERT INTO store_keys (key_id, first_used_at) VALUES (?, ?) ON CONFLICT DO NOTHING')
        .run(newest, this.#clock.now());
    }
    const recorded = this.#db.prepare('SELECT key_id FROM store_keys ORDER BY first_used_at').all() as Row[];
    checkStoreKeys(
      recorded.map((row) => String(row.key_id)),
      this.#sealer,
      location,
    );
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreUnavailableError('The store is closed.');
  }

  #changed(
    statement: StatementSync,
    params: Record<string, SQLInputValue>,
    attempt?: AttemptRecordInput,
  ): Promise<boolean> {
    return this.#write(() => {
      const changed = Number(statement.run(params).changes) === 1;
      if (changed) this.#touched.add(String(params.id));
      if (changed && attempt) this.#operator.logAttempt(String(params.id), attempt);
      return changed;
    }) as Promise<boolean>;
  }

  #write(run: () => unknown): Promise<unknown> {
    if (this.#closed) return Promise.reject(new StoreUnavailableError('The store is closed.'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ run, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /** Runs every queued write in one transaction: one fsync for the batch. */
  #flush(): void {
    this.#flushScheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0) return;
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      this.#db.exec('BEGIN IMMEDIATE');
      for (const write of batch) {
        this.#db.exec('SAVEPOINT write');
        try {
          outcomes.push({ ok: true, value: write.run() });
          this.#db.exec('RELEASE write');
        } catch (error) {
          // Disk full or I/O errors can make SQLite roll the whole transaction back itself.
          if (!this.#db.isTransaction) throw error;
          this.#db.exec('ROLLBACK TO write');
          this.#db.exec('RELEASE write');
          outcomes.push({ ok: false, error: asStoreError(error) });
        }
      }
      this.#db.exec('COMMIT');
      this.#onCommit?.(batch.length);
    } catch (error) {
      this.#touched.clear();
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      const failure = asStoreError(error);
      for (const write of batch) write.reject(failure);
      return;
    }
    batch.forEach((write, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) write.resolve(outcome.value);
      else write.reject(outcome.error);
    });
    const touched = this.#touched;
    this.#touched = new Set();
    for (const id of touched) for (const watcher of this.#watchers) watcher(id);
  }
}

function migrate(db: DatabaseSync): void {
  db.exec(`CREATE TABLE IF NOT EXISTS spillway_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`);
  db.exec('BEGIN IMMEDIATE'); // the write lock: one process migrates at a time
  try {
    const applied = new Set(
      (db.prepare('SELECT version FROM spillway_migrations').all() as Row[]).map((r) => Number(r.version)),
    );
    const record = db.prepare('INSERT INTO spillway_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    for (const migration of readMigrations(new URL('./migrations', import.meta.url))) {
      if (applied.has(migration.version)) continue;
      db.exec(migration.sql);
      record.run(migration.version, migration.name, Date.now());
    }
    db.exec('COMMIT');
  } catch (error) {
    db.exec('ROLLBACK');
    throw error;
  }
}

const CLEAR_LEASE = 'lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL';
/**
 * Waiting, unleased and not blocked behind its ordering key's head: the rows of the due indexes
 * (migration 024), each of which a statement must name in full for SQLite to read that index.
 */
export const FREE = `status IN ('NotStarted', 'Running') AND lease_owner IS NULL AND key_blocked = 0`;

/**
 * The columns a capture writes, in the order of the INSERT's numbered
 * parameters. Bound by position, not by name: node:sqlite looks up each of 24
 * names on every call, which made binding cost four times the rest of the
 * INSERT (about 8 µs of a capture's 54 on the store thread).
 */
const CAPTURE_COLUMNS = [
  'id',
  'route',
  'method',
  'path',
  'query',
  'request_headers',
  'request_body',
  'status',
  'attempts',
  'next_attempt_at',
  'lease_owner',
  'lease_expires_at',
  'lease_token',
  'outcome_unknown',
  'priority',
  'idempotency_key',
  'tenant',
  'callback_url',
  'webhook_subscriptions',
  'traceparent',
  'tracestate',
  'failover_reason',
  'ordering_key',
  'created_at',
] as const;
type CaptureValues = Record<(typeof CAPTURE_COLUMNS)[number], SQLInputValue>;
const captureParameter = (column: (typeof CAPTURE_COLUMNS)[number]) =>
  `?${CAPTURE_COLUMNS.indexOf(column) + 1}`;
const captureArguments = (values: CaptureValues) => CAPTURE_COLUMNS.map((column) => values[column]);

/** In its ordering key's queue: not finished, or a dead letter (which blocks its key). */
const IN_KEY_QUEUE = `(status IN ('NotStarted', 'Running') OR dead_lettered_at IS NOT NULL)`;

/**
 * The statements whose cost must not grow with the backlog (docs/scaling.md,
 * "Cost at any backlog"), each a range read of one index, named with INDEXED
 * BY so that a plan that cannot use it fails to prepare instead of walking the
 * table. Exported for the plan tests.
 */
export const BACKLOG_SQL = {
  // An expired lease means its holder died mid-attempt: count that attempt, outcome unknown, and
  // make it due again from the moment the lease ran out; its token goes with it, fencing the holder off.
  // A range read of the lease-expiry index (migration 003). No status change, so no event to tell.
  handBackExpired: `UPDATE operations SET
      attempts = attempts + 1, outcome_unknown = 1, next_attempt_at = lease_expires_at, ${CLEAR_LEASE},
      updated_at = :now
    WHERE id IN (SELECT id FROM operations INDEXED BY operations_lease_expiry
      WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NOT NULL AND lease_expires_at <= :now
      ORDER BY lease_expires_at LIMIT :limit)`,
  // The walk of the due index (migration 008) that dueInReplayOrder makes: the first (priority, route)
  // group of free operations, the next one below a group, and a group's due operations in due order.
  firstGroup: `SELECT priority, route FROM operations INDEXED BY operations_due
    WHERE ${FREE}
    ORDER BY priority DESC, route DESC LIMIT 1`,
  // Two seeks, not a row-value range: SQLite seeks `(priority, route) < (?, ?)` on priority alone and
  // walks every entry of the groups above it in that priority, the whole backlog at the last group.
  nextGroup: `SELECT priority, route FROM (
      SELECT priority, route FROM operations INDEXED BY operations_due
        WHERE ${FREE} AND priority = :priority AND route < :route
        ORDER BY route DESC LIMIT 1)
    UNION ALL SELECT priority, route FROM (
      SELECT priority, route FROM operations INDEXED BY operations_due
        WHERE ${FREE} AND priority < :priority
        ORDER BY priority DESC, route DESC LIMIT 1)
    LIMIT 1`,
  dueInGroup: `SELECT id, route, next_attempt_at FROM operations INDEXED BY operations_due
    WHERE ${FREE}
      AND priority = :priority AND route = :route AND next_attempt_at <= :now
    ORDER BY next_attempt_at LIMIT :limit`,
  // The first due time of one group (nextDueAt, oldestDueByRoute): one seek of the due index.
  firstDueInGroup: `SELECT min(next_attempt_at) AS at FROM operations INDEXED BY operations_due
    WHERE ${FREE} AND priority = :priority AND route = :route`,
  // The first lease to run out (nextDueAt): one seek of the lease-expiry index (migration 003).
  nextLeaseExpiry: `SELECT min(lease_expires_at) AS at FROM operations INDEXED BY operations_lease_expiry
    WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NOT NULL`,
  // Leases already run out, by route (oldestDueByRoute): a range of the lease-expiry index.
  expiredLeasesByRoute: `SELECT route, min(lease_expires_at) AS at FROM operations INDEXED BY operations_lease_expiry
    WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NOT NULL AND lease_expires_at <= :now
    GROUP BY route`,
  // Retention: a range read of the finished-operations index (migration 008).
  purge: `DELETE FROM operations WHERE id IN (SELECT id FROM operations INDEXED BY operations_finished
    WHERE status IN ('Succeeded', 'Failed', 'Canceled') AND updated_at < :before LIMIT :limit)`,
  // Kept by migration 008's triggers: a few rows per route and status, whatever the backlog.
  counts: `SELECT status, dead_lettered, sum(n) AS n FROM operation_counts GROUP BY status, dead_lettered`,
};

function prepareStatements(db: DatabaseSync) {
  const clearLease = CLEAR_LEASE;
  const [ordering, createdAt] = [captureParameter('ordering_key'), captureParameter('created_at')];
  // A lease's writes are fenced by its token: once it was handed back or taken over, they change nothing.
  const fenced = `WHERE id = :id AND lease_token = :token AND status = 'Running'`;
  return {
    handBackExpired: db.prepare(BACKLOG_SQL.handBackExpired),
    firstGroup: db.prepare(BACKLOG_SQL.firstGroup),
    nextGroup: db.prepare(BACKLOG_SQL.nextGroup),
    dueInGroup: db.prepare(BACKLOG_SQL.dueInGroup),
    purge: db.prepare(BACKLOG_SQL.purge),
    counts: db.prepare(BACKLOG_SQL.counts),
    // Each lease gets its own random token.
    leaseOne: db.prepare(`UPDATE operations SET
        status = 'Running', lease_owner = :owner, lease_token = lower(hex(randomblob(16))),
        lease_expires_at = :expires, updated_at = :now
      WHERE id = :id
      RETURNING *`),
    // A keyed capture joins the end of its key's queue (migration 024), blocked if the queue is not empty.
    insert:
      db.prepare(`INSERT INTO operations (${CAPTURE_COLUMNS.join(', ')}, key_seq, key_blocked, updated_at)
      SELECT ${CAPTURE_COLUMNS.map(captureParameter).join(', ')},
        CASE WHEN ${ordering} IS NOT NULL THEN coalesce(last, 0) + 1 END, last IS NOT NULL, ${createdAt}
      FROM (SELECT max(key_seq) AS last FROM operations INDEXED BY operations_key_queue
        WHERE route = ${captureParameter('route')} AND ordering_key = ${ordering} AND ${IN_KEY_QUEUE})`),
    keyBlocked: db.prepare('SELECT key_blocked FROM operations WHERE id = :id'),
    keyPending: db.prepare(`SELECT 1 FROM operations INDEXED BY operations_key_queue
      WHERE route = :route AND ordering_key = :ordering_key AND ${IN_KEY_QUEUE} LIMIT 1`),
    // Dead letters are few (an index of them, migration 001); each blocked key's queue is counted by its index.
    blockedKeys: db.prepare(`SELECT d.id, d.route, d.ordering_key, d.dead_lettered_at,
        (SELECT count(*) FROM operations AS q INDEXED BY operations_key_queue
          WHERE q.route = d.route AND q.ordering_key = d.ordering_key
            AND (q.status IN ('NotStarted', 'Running') OR q.dead_lettered_at IS NOT NULL)) - 1 AS waiting
      FROM operations AS d INDEXED BY operations_dead_lettered
      WHERE d.dead_lettered_at IS NOT NULL AND d.ordering_key IS NOT NULL
      ORDER BY d.dead_lettered_at LIMIT :limit`),
    // A claim takes a free key, or one whose record expired or whose claimant's lock lapsed.
    claimKey:
      db.prepare(`INSERT INTO idempotency_keys (key, token, fingerprint, state, locked_until, expires_at,
        created_at) VALUES (:key, :token, :fingerprint, 'in-progress', :lockedUntil, :expiresAt, :now)
      ON CONFLICT (key) DO UPDATE SET token = excluded.token, fingerprint = excluded.fingerprint,
        state = 'in-progress', operation_id = NULL, response_status = NULL, response_headers = NULL,
        response_body = NULL, locked_until = excluded.locked_until, expires_at = excluded.expires_at,
        created_at = excluded.created_at
      WHERE idempotency_keys.expires_at <= :now
        OR (idempotency_keys.state = 'in-progress' AND idempotency_keys.locked_until <= :now)`),
    getKey: db.prepare('SELECT * FROM idempotency_keys WHERE key = :key'),
    acceptKey: db.prepare(`UPDATE idempotency_keys SET state = 'accepted', operation_id = :id
      WHERE key = :key AND token = :token AND state = 'in-progress'`),
    completeKey:
      db.prepare(`UPDATE idempotency_keys SET state = 'completed', response_status = :response_status,
        response_headers = :response_headers, response_body = :response_body
      WHERE key = :key AND token = :token AND state = 'in-progress'`),
    releaseKey: db.prepare(
      `DELETE FROM idempotency_keys WHERE key = :key AND token = :token AND state = 'in-progress'`,
    ),
    purgeKeys: db.prepare(`DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys
      WHERE expires_at <= :now LIMIT :limit)`),
    // A heartbeat is no status change and no action a client sees: updated_at stays.
    extendLease: db.prepare(`UPDATE operations SET lease_expires_at = :until ${fenced}`),
    complete: db.prepare(`UPDATE operations SET status = 'Succeeded', attempts = attempts + 1,
        result_status = :result_status, result_headers = :result_headers, result_body = :result_body,
        error = NULL, ${clearLease}, updated_at = :now ${fenced}`),
    retry: db.prepare(`UPDATE operations SET attempts = attempts + 1, next_attempt_at = :next_attempt_at,
        error = :error, outcome_unknown = outcome_unknown OR :outcome_unknown, ${clearLease}, updated_at = :now
      ${fenced}`),
    fail: db.prepare(`UPDATE operations SET status = 'Failed', attempts = attempts + :counted, error = :error,
        result_status = :result_status, result_headers = :result_headers, result_body = :result_body,
        dead_lettered_at = :dead_lettered_at, ${clearLease}, updated_at = :now ${fenced}`),
    release: db.prepare(`UPDATE operations SET attempts = attempts + :in_flight,
        outcome_unknown = outcome_unknown OR :in_flight, ${clearLease}, updated_at = :now ${fenced}`),
    get: db.prepare('SELECT * FROM operations WHERE id = :id'),
    cancel: db.prepare(`UPDATE operations SET status = 'Canceled', updated_at = :now
      WHERE id = :id AND lease_owner IS NULL AND (status = 'NotStarted' OR (:between AND status = 'Running'))`),
    events: db.prepare(
      'SELECT * FROM operation_events WHERE operation_id = :id AND seq > :after ORDER BY seq',
    ),
    setOverride:
      db.prepare(`INSERT INTO route_overrides (route, override, updated_at) VALUES (:route, :override, :now)
      ON CONFLICT (route) DO UPDATE SET override = excluded.override, updated_at = excluded.updated_at`),
    clearOverride: db.prepare('DELETE FROM route_overrides WHERE route = :route'),
    overrides: db.prepare('SELECT route, override FROM route_overrides ORDER BY route'),
    firstDueInGroup: db.prepare(BACKLOG_SQL.firstDueInGroup),
    nextLeaseExpiry: db.prepare(BACKLOG_SQL.nextLeaseExpiry),
    expiredLeasesByRoute: db.prepare(BACKLOG_SQL.expiredLeasesByRoute),
  };
}

function resultColumns(sealer: MessageSealer, id: string, result: StoredResponse | null) {
  const stored = result ? sealer.seal(result.headers, result.body, messageRow.result(id)) : null;
  return {
    result_status: result?.status ?? null,
    result_headers: stored?.headers ?? null,
    result_body: stored?.body ?? null,
  };
}

function responseColumns(sealer: MessageSealer, key: string, response: StoredResponse) {
  const stored = sealer.seal(response.headers, response.body, messageRow.idempotentAnswer(key));
  return {
    response_status: response.status,
    response_headers: stored.headers,
    response_body: stored.body,
  };
}

// This adapter's reading of the shared rows (operation-row.ts): SQLite's booleans and JSON text.
const toOperation = (row: Row, sealer: MessageSealer): Operation => operationOf(row, sealer, sqliteValues);
const toLeasedOperation = (row: Row, sealer: MessageSealer): LeasedOperation =>
  leasedOperationOf(row, sealer, sqliteValues);
const toIdempotencyRecord = (row: Row, sealer: MessageSealer): IdempotencyRecord =>
  idempotencyRecordOf(row, String(row.key), sealer, sqliteValues);

interface DueOperation {
  id: string;
  route: string;
  nextAttemptAt: number;
}

/**
 * The first `limit` due free operations in replay order (priority, then due
 * time) of the routes `leasable` accepts, from range reads of the due index
 * alone: one seek per (priority, route) group, and at most `limit` rows read
 * from each group of the priorities visited. A priority's groups are merged
 * here (a sort of at most `limit` rows per group), and lower priorities are
 * not visited once `limit` is reached.
 */
/**
 * The (priority, route) groups of free operations, highest priority first:
 * one seek of the due index each (firstGroup, then nextGroup below the last).
 */
function* dueGroups(
  sql: ReturnType<typeof prepareStatements>,
): Generator<{ priority: number; route: string }> {
  let group = sql.firstGroup.get() as Row | undefined;
  while (group) {
    const key = { priority: Number(group.priority), route: String(group.route) };
    yield key;
    group = sql.nextGroup.get(key) as Row | undefined;
  }
}

function dueInReplayOrder(
  sql: ReturnType<typeof prepareStatements>,
  now: number,
  limit: number,
  leasable: (route: string) => boolean,
): DueOperation[] {
  const picked: DueOperation[] = [];
  let level: DueOperation[] = [];
  let group = sql.firstGroup.get() as Row | undefined;
  let priority = group?.priority;
  const closeLevel = () => {
    level.sort((a, b) => a.nextAttemptAt - b.nextAttemptAt || (a.id < b.id ? -1 : 1));
    picked.push(...level.slice(0, limit - picked.length));
    level = [];
  };
  while (group && picked.length < limit) {
    if (group.priority !== priority) {
      closeLevel();
      priority = group.priority;
      if (picked.length >= limit) break;
    }
    if (leasable(String(group.route))) {
      const rows = sql.dueInGroup.all({ ...group, now, limit: limit - picked.length }) as Row[];
      for (const row of rows) {
        level.push({
          id: String(row.id),
          route: String(row.route),
          nextAttemptAt: Number(row.next_attempt_at),
        });
      }
    }
    const key: Row = { priority: group.priority as number, route: group.route as string };
    group = sql.nextGroup.get(key) as Row | undefined;
  }
  closeLevel();
  return picked;
}

/** Expired leases handed back per lease call at most; the rest go at the next. */
const HAND_BACK_BATCH = 100;

function asStoreError(error: unknown): unknown {
  const code = (error as { errcode?: number }).errcode;
  if (typeof code === 'number' && UNAVAILABLE_CODES.has(code & 0xff)) {
    return new StoreUnavailableError(`The store cannot take writes: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return error;
}
