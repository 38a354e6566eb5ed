/**
 * The scale-out OperationStore on PostgreSQL: several gateway and worker
 * processes share one database (one schema of it).
 *
 * Clock: Node's clock, the injected Clock, is the source of truth for every
 * stored time (`next_attempt_at`, `lease_expires_at`, `created_at`, …). Each
 * statement gets `clock.now()` as a parameter and never calls the server's
 * now(): times are computed where decisions are made, the SQLite adapter does
 * the same, and the conformance suite drives both with a manual clock. The
 * cost: processes sharing a database must keep their clocks in step (NTP);
 * leases outlive attempts by LEASE_MARGIN_MS (5 s), far more than NTP's skew.
 *
 * Durability: a verb resolves only after its statement has committed, with
 * `synchronous_commit=on` forced on every connection. Each verb is one
 * statement, so one commit, and nothing half-written is possible.
 *
 * Group commit: captures queue up and are written by one multi-row INSERT per
 * batch (one round trip, one commit), at most MAX_CAPTURE_FLUSHES at a time;
 * captures arriving while those are in flight share the next one. A duplicate
 * id rejects only its own capture (ON CONFLICT DO NOTHING), and a batch that
 * fails for any other reason than the store being unavailable is retried row
 * by row, so one bad write does not sink its batch. Other verbs are single
 * statements: the server already shares WAL flushes between concurrent commits.
 *
 * Leasing: `FOR UPDATE SKIP LOCKED` in one UPDATE statement, so concurrent
 * lease calls from any number of processes never claim one operation twice and
 * never wait on each other. Each leased row gets its own random token (the
 * call's token, a dot, and a random UUID: the call's part finds the rows of a
 * call whose answer was lost). The same statement hands back expired leases,
 * counting the lost attempt and setting outcome_unknown, as on SQLite.
 *
 * Faults: errors that mean the server cannot be reached or cannot take writes
 * reject with StoreUnavailableError (see connection.ts); the pool opens new
 * connections by itself once the server is back. An unanswered COMMIT is
 * ambiguous: such a capture is answered 503, never 202, although it may have
 * been stored (it is then replayed like any other). A lease whose answer was
 * lost is remembered by its token and handed back untouched at the next lease
 * call, so rows this process never saw are not later mistaken for attempts
 * lost in a crash. For the same reason the fenced verbs that finish an
 * attempt (complete, retry, fail, release) are retried through an outage of
 * up to FENCED_RETRY_WINDOW_MS: were one lost, its lease would expire and the
 * attempt be counted as lost with an unknown outcome. Retrying is safe: each
 * is fenced by its lease's token and clears it, so a retry after an
 * unanswered success changes nothing (and resolves false), and so does one
 * that lands after the lease ran out and was handed back or taken over, however
 * long the outage outlasted the lease.
 *
 * Events and watching: migration 004's triggers write an operation's events
 * (one per status change) in the transaction that changes it, and NOTIFY the
 * schema's channel with its id. `watch` hears of changes two ways: this
 * process's own writes tell its watchers as soon as they resolve, and one
 * LISTEN connection per store (started by the first `watch`, see
 * listener.ts) brings the other processes' commits. Notifications sent by
 * this store's own pooled connections are skipped there, having been told
 * already.
 */
import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { type Clock, systemClock } from '../../clock.ts';
import { StoredValueUnreadableError, StoreUnavailableError } from '../../errors.ts';
import { postgresValues } from '../dialect-values.ts';
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
import { storedRouteHealthOf } from '../route-health-row.ts';
import { checkStoreKeys, MessageSealer, messageRow, type StoreKeyring } from '../sealed-values.ts';
import {
  EVICT_STALE_COPIES,
  readableStaleCopies,
  staleCopyColumns,
  staleCopySize,
} from '../stale-copy-row.ts';
import {
  asStoreError,
  createPool,
  isUnavailable,
  loadDriver,
  type PostgresLocation,
  parseLocation,
} from './connection.ts';
import { DUE_GROUPS, FREE } from './due-groups.ts';
import { NotificationListener } from './listener.ts';
import { checkServerVersion, migrate } from './migrate.ts';
import {
  ATTEMPT_LOG,
  attemptValues,
  DISCARD,
  listStatement,
  PAUSE_REPLAY,
  PAUSED_REPLAYS,
  REDRIVE,
  RESUME_REPLAY,
  ROUTE_COUNTS,
  toAttemptRecord,
  toRouteCounts,
  toSummary,
  withAttemptLog,
} from './operator-actions.ts';
import { BRING_FORWARD, ROUTE_HEALTH, SET_ROUTE_HEALTH } from './route-drain.ts';
import {
  DROP_STALE_COPIES,
  KEEP_STALE_COPY,
  PURGE_STALE_COPIES,
  STALE_COPIES,
  USE_STALE_COPY,
} from './stale-copies.ts';
import {
  DISABLED_WEBHOOK_ENDPOINTS,
  ENABLE_WEBHOOK_ENDPOINT,
  LEASE_WEBHOOKS,
  leaseWebhookValues,
  listWebhookStatement,
  NEXT_WEBHOOK_DUE,
  RECORD_WEBHOOK_ATTEMPT,
  RELEASE_WEBHOOK,
  RESEND_WEBHOOK,
  recordWebhookValues,
  releaseWebhookValues,
  resendWebhookValues,
  toDisabledWebhookEndpoint,
  toLeasedWebhookDelivery,
  toWebhookDelivery,
  toWebhookResend,
  WEBHOOK_ATTEMPTS,
  WEBHOOK_DELIVERIES,
  withAttemptLogs,
} from './webhook-outbox.ts';

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database[?schema=name]`. */
  url: string;
  /** The schema holding Spillway's tables; wins over `?schema=`. Default `spillway`. Created if missing. */
  schema?: string;
  clock?: Clock;
  /** Connections at most, per process. Default 10. */
  poolSize?: number;
  /** Connecting, or waiting for a free connection, gives up after this (then 503). Default 5 s. */
  connectTimeoutMs?: number;
  /** A statement gives up after this (then 503). Default 10 s. */
  statementTimeoutMs?: number;
  /** How often the LISTEN connection (see `watch`) checks that it is still alive. Default 30 s. */
  listenHeartbeatMs?: number;
  /** Encrypt request and response content at rest under these keys, newest first (sealed-values.ts). Default: plaintext. */
  encryptionKeys?: StoreKeyring;
  /**
   * Told of what fails outside a verb's own answer: a leased row that cannot be decrypted (then
   * handed back and skipped), leases that could not be handed back at close, a pool that did not end.
   */
  onError?: (error: unknown) => void;
}

interface PendingCapture {
  row: Operation;
  idempotency: NewOperation['idempotency'];
  firstAttempt: NewOperation['firstAttempt'];
  /** The webhook subscriptions that apply, as the jsonb column holds them. */
  webhookSubscriptions: string | null;
  /** An adopted capture's lease token. */
  leaseToken: string | null;
  resolve: (operation: Operation) => void;
  reject: (error: unknown) => void;
}

type Row = Record<string, unknown>;

/** Multi-row INSERTs in flight at once; more captures wait and share the next one. */
const MAX_CAPTURE_FLUSHES = 2;
/** Rows per INSERT at most. */
const MAX_CAPTURE_BATCH = 500;
/** How long a fenced verb keeps retrying while the store is unavailable, and the pauses between tries. */
const FENCED_RETRY_WINDOW_MS = 10_000;
const FENCED_RETRY_PAUSES_MS = [100, 250, 500, 1_000, 2_000];

export class DuplicateOperationError extends Error {
  override name = 'DuplicateOperationError';
}

/**
 * Each (priority, route) group's first due entry (a seek of operations_due each, migration 025) and
 * the expired leases (a range of operations_lease_expiry, 003), by route: never a walk of the table.
 */
export const OLDEST_DUE_BY_ROUTE = `WITH RECURSIVE groups AS (
    ${DUE_GROUPS}
  )
  SELECT route, min(at) AS at FROM (
    SELECT g.route, f.at FROM groups AS g CROSS JOIN LATERAL (
      SELECT next_attempt_at AS at FROM operations
      WHERE ${FREE} AND priority = g.priority AND route = g.route AND next_attempt_at <= $1::bigint
      ORDER BY next_attempt_at LIMIT 1) AS f
    UNION ALL
    SELECT route, min(lease_expires_at) FROM operations
      WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NOT NULL AND lease_expires_at <= $1::bigint
      GROUP BY route) AS due
  GROUP BY route`;

/** The earliest due time: each group's first entry (a seek each), and the first lease to run out. */
export const NEXT_DUE = `WITH RECURSIVE groups AS (
    ${DUE_GROUPS}
  )
  SELECT least(
    (SELECT min(f.at) FROM groups AS g CROSS JOIN LATERAL (
      SELECT next_attempt_at AS at FROM operations
      WHERE ${FREE} AND priority = g.priority AND route = g.route
      ORDER BY next_attempt_at LIMIT 1) AS f),
    (SELECT min(lease_expires_at) FROM operations
      WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NOT NULL)) AS at`;

export class PostgresStore implements OperationStore {
  readonly #pool: Pool;
  readonly #location: PostgresLocation;
  readonly #clock: Clock;
  #captures: PendingCapture[] = [];
  #flushes = 0;
  #flushScheduled = false;
  /** Every verb in progress, so close() can let them finish before ending the pool. */
  readonly #busy = new Set<Promise<unknown>>();
  /** Tokens of lease calls whose answer was lost: their rows are handed back at the next lease. */
  readonly #lostLeases = new Map<string, LostLease>(); // by the call's token
  readonly #watchers = new Set<(operationId: string) => void>();
  /**
   * The LISTEN connection, made by the first watch. It skips notifications sent by this store's
   * own pooled connections (their server process ids are kept from the pool's first connection
   * on): those writes told the watchers when they resolved.
   */
  readonly #listener: NotificationListener;
  readonly #sealer: MessageSealer;
  readonly #onError: (error: unknown) => void;
  #closed = false;

  /** Connects, checks the server version and migrates the schema. Rejects StoreUnavailableError if unreachable. */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const location = parseLocation(options.url, options.schema);
    const pg = await loadDriver();
    const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    const pool = createPool(pg, location, {
      size: options.poolSize ?? 10,
      connectTimeoutMs,
      statementTimeoutMs: options.statementTimeoutMs ?? 10_000,
    });
    // From the first connection on: the one that migrates stays in the pool and serves verbs.
    const sealer = new MessageSealer(options.encryptionKeys);
    const onError =
      options.onError ??
      ((error: unknown) =>
        // Nobody listens: the process warning is the last resort, never silence.
        process.emitWarning(`Spillway store: ${(error as Error).message}`, { code: 'SPILLWAY_STORE_ERROR' }));
    const ownBackends = new Set<number>();
    pool.on('connect', (client) => {
      const pid = backendOf(client);
      if (pid !== undefined) ownBackends.add(pid);
    });
    pool.on('remove', (client) => {
      const pid = backendOf(client);
      if (pid !== undefined) ownBackends.delete(pid);
    });
    try {
      const client = await pool.connect();
      try {
        await checkServerVersion(client, location.display);
        await migrate(client, location.schema);
        await recordKeys(client, sealer, location.display);
      } finally {
        client.release();
      }
    } catch (error) {
      // The reason it did not open is what the caller hears; a pool that also fails to end is told apart.
      await pool.end().catch(onError);
      throw asStoreError(error, location);
    }
    const listener = (store: PostgresStore) =>
      new NotificationListener(
        pg,
        location,
        { connectTimeoutMs, heartbeatMs: options.listenHeartbeatMs ?? 30_000 },
        (id, processId) => {
          if (!ownBackends.has(processId)) store.#tell(id);
        },
      );
    return new PostgresStore(pool, location, options.clock ?? systemClock, listener, sealer, onError);
  }

  private constructor(
    pool: Pool,
    location: PostgresLocation,
    clock: Clock,
    listener: (store: PostgresStore) => NotificationListener,
    sealer: MessageSealer,
    onError: (error: unknown) => void,
  ) {
    this.#pool = pool;
    this.#location = location;
    this.#clock = clock;
    this.#listener = listener(this);
    this.#sealer = sealer;
    this.#onError = onError;
  }

  /** The schema holding this store's tables. */
  get schema(): string {
    return this.#location.schema;
  }

  capture(op: NewOperation): Promise<Operation> {
    if (this.#closed) return Promise.reject(closedError());
    const now = this.#clock.now();
    const row = capturedOperation(op, now);
    const webhookSubscriptions = op.webhookSubscriptions?.length
      ? JSON.stringify(op.webhookSubscriptions)
      : null;
    const captured = new Promise<Operation>((resolve, reject) => {
      this.#captures.push({
        row,
        idempotency: op.idempotency,
        firstAttempt: op.firstAttempt,
        webhookSubscriptions,
        leaseToken: op.lease?.token ?? null,
        resolve,
        reject,
      });
    });
    this.#scheduleFlush();
    return this.#track(captured);
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
    return this.#run(async () => {
      await this.#handBackLostLeases();
      const now = this.#clock.now();
      const token = randomUUID();
      const durations = Object.values(leaseMsByRoute);
      try {
        const { rows } = await this.#pool.query({
          name: 'spillway_lease',
          text: LEASE,
          values: [
            owner,
            now,
            leaseMs,
            limit,
            token,
            excludeRoutes,
            JSON.stringify(leaseMsByRoute),
            HAND_BACK_BATCH,
            routes ?? null,
            functions,
            proxiedRoutes,
          ],
        });
        const leased = await this.#openLeased(rows as Row[]);
        for (const op of leased) this.#tell(op.id);
        return leased.sort(replayOrder);
      } catch (error) {
        // The UPDATE may have committed with its answer lost: hand those rows back next time.
        this.#lostLeases.set(token, {
          owner,
          from: now + Math.min(leaseMs, ...durations),
          to: now + Math.max(leaseMs, ...durations),
        });
        throw error;
      }
    });
  }

  // The verbs that end an attempt write its record in the same statement (withAttemptLog).

  complete(
    id: string,
    token: string,
    result: StoredResponse,
    attempt?: AttemptRecordInput,
  ): Promise<boolean> {
    return this.#changed(
      'spillway_complete',
      withAttemptLog(
        `UPDATE operations SET status = 'Succeeded', attempts = attempts + 1,
           result_status = $4, result_headers = $5, result_body = $6, error = NULL, ${CLEAR_LEASE}, updated_at = $3
         ${FENCED}`,
        7,
      ),
      [id, token, this.#clock.now(), ...resultValues(this.#sealer, id, result), ...attemptValues(attempt)],
    );
  }

  retry(id: string, token: string, record: RetryRecord, attempt?: AttemptRecordInput): Promise<boolean> {
    return this.#changed(
      'spillway_retry',
      withAttemptLog(
        `UPDATE operations SET attempts = attempts + 1, next_attempt_at = $4, error = $5,
           outcome_unknown = outcome_unknown OR $6, ${CLEAR_LEASE}, updated_at = $3
         ${FENCED}`,
        7,
      ),
      [
        id,
        token,
        this.#clock.now(),
        record.nextAttemptAt,
        JSON.stringify(record.error),
        record.outcomeUnknown,
        ...attemptValues(attempt),
      ],
    );
  }

  fail(id: string, token: string, record: FailRecord, attempt?: AttemptRecordInput): Promise<boolean> {
    const now = this.#clock.now();
    return this.#changed(
      'spillway_fail',
      withAttemptLog(
        `UPDATE operations SET status = 'Failed', attempts = attempts + $4, error = $5,
           result_status = $6, result_headers = $7, result_body = $8, dead_lettered_at = $9, ${CLEAR_LEASE},
           updated_at = $3
         ${FENCED}`,
        10,
      ),
      [
        id,
        token,
        now,
        record.countsAsAttempt ? 1 : 0,
        JSON.stringify(record.error),
        ...resultValues(this.#sealer, id, record.result),
        record.deadLetter ? now : null,
        ...attemptValues(attempt),
      ],
    );
  }

  release(
    id: string,
    token: string,
    attemptInFlight: boolean,
    attempt?: AttemptRecordInput,
  ): Promise<boolean> {
    return this.#changed(
      'spillway_release',
      withAttemptLog(
        `UPDATE operations SET attempts = attempts + $4, outcome_unknown = outcome_unknown OR $5, ${CLEAR_LEASE},
           updated_at = $3
         ${FENCED}`,
        6,
      ),
      [id, token, this.#clock.now(), attemptInFlight ? 1 : 0, attemptInFlight, ...attemptValues(attempt)],
    );
  }

  /** Not retried through an outage: a heartbeat that cannot be written is simply the next one's to make. */
  extendLease(id: string, token: string, until: number): Promise<boolean> {
    return this.#run(async () => {
      const { rowCount } = await this.#pool.query({
        name: 'spillway_extend_lease',
        text: `UPDATE operations SET lease_expires_at = $3 ${FENCED}`,
        values: [id, token, until],
      });
      return rowCount === 1;
    });
  }

  purge(before: number, limit: number): Promise<number> {
    return this.#run(async () => {
      const { rowCount } = await this.#pool.query({
        name: 'spillway_purge',
        text: PURGE,
        values: [before, limit],
      });
      return rowCount ?? 0;
    });
  }

  claimIdempotencyKey(claim: IdempotencyClaim): Promise<IdempotencyRecord | undefined> {
    return this.#run(async () => {
      const now = this.#clock.now();
      for (;;) {
        // The primary key makes the claim atomic across processes; a lapsed record is taken over in place.
        const claimed = await this.#pool.query({
          name: 'spillway_claim_key',
          text: `INSERT INTO idempotency_keys (key, token, fingerprint, state, locked_until, expires_at, created_at)
                 VALUES ($1, $2, $3, 'in-progress', $4, $5, $6)
                 ON CONFLICT (key) DO UPDATE SET token = excluded.token, fingerprint = excluded.fingerprint,
                   state = 'in-progress', operation_id = NULL, response_status = NULL, response_headers = NULL,
                   response_body = NULL, locked_until = excluded.locked_until, expires_at = excluded.expires_at,
                   created_at = excluded.created_at
                 WHERE idempotency_keys.expires_at <= $6
                   OR (idempotency_keys.state = 'in-progress' AND idempotency_keys.locked_until <= $6)
                 RETURNING key`,
          values: [claim.key, claim.token, claim.fingerprint, claim.lockedUntil, claim.expiresAt, now],
        });
        if (claimed.rowCount === 1) return undefined;
        const { rows } = await this.#pool.query({
          name: 'spillway_get_key',
          text: `SELECT fingerprint, state, operation_id, response_status, response_headers, response_body,
                   locked_until, expires_at FROM idempotency_keys WHERE key = $1`,
          values: [claim.key],
        });
        // Gone between the two statements (purged, or released by its claimant): claim again.
        if (rows[0]) return toIdempotencyRecord(rows[0] as Row, claim.key, this.#sealer);
      }
    });
  }

  completeIdempotencyKey(key: string, token: string, response: StoredResponse): Promise<void> {
    return this.#run(async () => {
      await this.#pool.query({
        name: 'spillway_complete_key',
        text: `UPDATE idempotency_keys SET state = 'completed', response_status = $3, response_headers = $4,
                 response_body = $5
               WHERE key = $1 AND token = $2 AND state = 'in-progress'`,
        values: [key, token, ...answerValues(this.#sealer, key, response)],
      });
    });
  }

  releaseIdempotencyKey(key: string, token: string): Promise<void> {
    return this.#run(async () => {
      await this.#pool.query({
        name: 'spillway_release_key',
        text: `DELETE FROM idempotency_keys WHERE key = $1 AND token = $2 AND state = 'in-progress'`,
        values: [key, token],
      });
    });
  }

  purgeIdempotencyKeys(now: number, limit: number): Promise<number> {
    return this.#run(async () => {
      const { rowCount } = await this.#pool.query({
        name: 'spillway_purge_keys',
        text: `DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys
                 WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
        values: [now, limit],
      });
      return rowCount ?? 0;
    });
  }

  cancel(id: string, options: { betweenAttempts?: boolean } = {}): Promise<boolean> {
    return this.#changed(
      'spillway_cancel',
      `UPDATE operations SET status = 'Canceled', updated_at = $2
       WHERE id = $1 AND lease_owner IS NULL AND (status = 'NotStarted' OR ($3 AND status = 'Running'))`,
      [id, this.#clock.now(), options.betweenAttempts === true],
    );
  }

  get(id: string): Promise<Operation | undefined> {
    return this.#run(() => this.#read(id));
  }

  counts(): Promise<StatusCounts> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({
        name: 'spillway_counts',
        text: COUNTS,
      });
      const counts = emptyStatusCounts();
      for (const row of rows as Row[]) {
        counts[row.status as OperationStatus] += Number(row.n);
        if (row.dead_lettered === true) counts.deadLettered += Number(row.n);
      }
      return counts;
    });
  }

  events(id: string, afterSeq: number): Promise<OperationEvent[]> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({
        name: 'spillway_events',
        text: `SELECT seq, status, at, attempts, error FROM operation_events
               WHERE operation_id = $1 AND seq > $2 ORDER BY seq`,
        values: [id, afterSeq],
      });
      return (rows as Row[]).map((row) => toOperationEvent(id, row, postgresValues));
    });
  }

  watch(listener: (operationId: string) => void): () => void {
    if (this.#closed) return () => {};
    this.#watchers.add(listener);
    this.#listener.start();
    return () => {
      this.#watchers.delete(listener);
    };
  }

  setOverride(route: string, override: RouteOverride | null): Promise<void> {
    return this.#run(async () => {
      if (override === null) {
        await this.#pool.query('DELETE FROM route_overrides WHERE route = $1', [route]);
      } else {
        await this.#pool.query(
          `INSERT INTO route_overrides (route, override, updated_at) VALUES ($1, $2, $3)
           ON CONFLICT (route) DO UPDATE SET override = excluded.override, updated_at = excluded.updated_at`,
          [route, override, this.#clock.now()],
        );
      }
    });
  }

  overrides(): Promise<Record<string, RouteOverride>> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query('SELECT route, override FROM route_overrides ORDER BY route');
      return Object.fromEntries(
        (rows as Row[]).map((row) => [String(row.route), row.override as RouteOverride]),
      );
    });
  }

  orderingKeyPending(route: string, orderingKey: string): Promise<boolean> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({
        name: 'spillway_key_pending',
        text: KEY_PENDING,
        values: [route, orderingKey],
      });
      return rows.length > 0;
    });
  }

  blockedOrderingKeys(limit: number): Promise<BlockedOrderingKey[]> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({
        name: 'spillway_blocked_keys',
        text: BLOCKED_KEYS,
        values: [limit],
      });
      return (rows as Row[]).map((row) => ({
        route: String(row.route),
        orderingKey: String(row.ordering_key),
        operationId: String(row.id),
        deadLetteredAt: Number(row.dead_lettered_at),
        waiting: Number(row.waiting),
      }));
    });
  }

  nextDueAt(): Promise<number | undefined> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({
        name: 'spillway_next_due',
        text: NEXT_DUE,
      });
      const at = (rows[0] as Row | undefined)?.at;
      return at === null || at === undefined ? undefined : Number(at);
    });
  }

  leaseWebhookDeliveries(request: WebhookLeaseRequest): Promise<LeasedWebhookDelivery[]> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({
        name: 'spillway_webhook_lease',
        text: LEASE_WEBHOOKS,
        values: leaseWebhookValues(request, this.#clock.now()),
      });
      return (rows as Row[]).map(toLeasedWebhookDelivery).sort((a, b) => a.createdAt - b.createdAt);
    });
  }

  recordWebhookAttempt(
    key: WebhookDeliveryKey,
    token: string,
    record: WebhookAttemptRecord,
  ): Promise<boolean> {
    // Retried through an outage like the other fenced verbs: a lost record would send the webhook again.
    return this.#changed(
      'spillway_webhook_record',
      RECORD_WEBHOOK_ATTEMPT,
      recordWebhookValues(key, token, record, this.#clock.now()),
    );
  }

  releaseWebhookDelivery(key: WebhookDeliveryKey, token: string): Promise<boolean> {
    return this.#changed(
      'spillway_webhook_release',
      RELEASE_WEBHOOK,
      releaseWebhookValues(key, token, this.#clock.now()),
    );
  }

  webhookDeliveries(operationId: string): Promise<Array<WebhookDelivery & { attemptLog: WebhookAttempt[] }>> {
    return this.#run(async () => {
      const [deliveries, attempts] = await Promise.all([
        this.#pool.query({
          name: 'spillway_webhook_deliveries',
          text: WEBHOOK_DELIVERIES,
          values: [operationId],
        }),
        this.#pool.query({
          name: 'spillway_webhook_attempts',
          text: WEBHOOK_ATTEMPTS,
          values: [operationId],
        }),
      ]);
      return withAttemptLogs(deliveries.rows as Row[], attempts.rows as Row[]);
    });
  }

  listWebhookDeliveries(query: WebhookDeliveryQuery): Promise<WebhookDelivery[]> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query(listWebhookStatement(query));
      return (rows as Row[]).map(toWebhookDelivery);
    });
  }

  nextWebhookDueAt(endpoints: readonly string[]): Promise<number | undefined> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({
        name: 'spillway_webhook_next_due',
        text: NEXT_WEBHOOK_DUE,
        values: [endpoints],
      });
      const at = (rows[0] as Row | undefined)?.at;
      return at === null || at === undefined ? undefined : Number(at);
    });
  }

  disabledWebhookEndpoints(): Promise<DisabledWebhookEndpoint[]> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({
        name: 'spillway_webhook_disabled_endpoints',
        text: DISABLED_WEBHOOK_ENDPOINTS,
      });
      return (rows as Row[]).map(toDisabledWebhookEndpoint);
    });
  }

  enableWebhookEndpoint(endpoint: string): Promise<DisabledWebhookEndpoint[]> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({
        name: 'spillway_webhook_enable_endpoint',
        text: ENABLE_WEBHOOK_ENDPOINT,
        values: [endpoint],
      });
      return (rows as Row[]).map(toDisabledWebhookEndpoint);
    });
  }

  // Not retried through an outage like the fenced verbs: a retry after a lost answer would find the
  // delivery pending and report a refusal for a re-send that took place. The operator sees the error instead.
  resendWebhookDelivery(key: WebhookDeliveryKey, url?: string): Promise<WebhookResend> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({
        name: 'spillway_webhook_resend',
        text: RESEND_WEBHOOK,
        values: resendWebhookValues(key, url, this.#clock.now()),
      });
      const resend = toWebhookResend(rows[0] as Row | undefined);
      if (resend.outcome === 'resent') this.#tell(key.operationId);
      return resend;
    });
  }

  // Operator actions and views (operator-actions.ts).

  listOperations(query: OperationQuery): Promise<OperationSummary[]> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query(listStatement(query));
      return (rows as Row[]).map(toSummary);
    });
  }

  attemptLog(id: string): Promise<AttemptRecord[]> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({
        name: 'spillway_attempt_log',
        text: ATTEMPT_LOG,
        values: [id],
      });
      return (rows as Row[]).map(toAttemptRecord);
    });
  }

  // Not retried through an outage: after a lost answer the operator sees the error and looks again.
  redrive(id: string, options: { includeOutcomeUnknown?: boolean } = {}): Promise<RedriveResult> {
    return this.#run(async (): Promise<RedriveResult> => {
      const { rowCount } = await this.#pool.query({
        name: 'spillway_redrive',
        text: REDRIVE,
        values: [id, this.#clock.now(), options.includeOutcomeUnknown === true],
      });
      const operation = await this.#read(id);
      if (!operation) return { outcome: 'unknown' };
      if (rowCount === 1) {
        this.#tell(id);
        return { outcome: 'redriven', operation };
      }
      const reason = operation.deadLetteredAt === null ? 'not-dead-lettered' : 'outcome-unknown';
      return { outcome: 'refused', reason, operation };
    });
  }

  discard(id: string): Promise<DiscardResult> {
    return this.#run(async (): Promise<DiscardResult> => {
      const { rowCount } = await this.#pool.query({
        name: 'spillway_discard',
        text: DISCARD,
        values: [id, this.#clock.now()],
      });
      const operation = await this.#read(id);
      if (!operation) return { outcome: 'unknown' };
      if (rowCount !== 1) return { outcome: 'refused', reason: 'not-dead-lettered', operation };
      this.#tell(id);
      return { outcome: 'discarded', operation };
    });
  }

  oldestDueByRoute(now: number): Promise<Record<string, number>> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({
        name: 'spillway_oldest_due_by_route',
        text: OLDEST_DUE_BY_ROUTE,
        values: [now],
      });
      return Object.fromEntries((rows as Row[]).map((row) => [String(row.route), Number(row.at)]));
    });
  }

  routeCounts(): Promise<Record<string, RouteCounts>> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({ name: 'spillway_route_counts', text: ROUTE_COUNTS });
      return toRouteCounts(rows as Row[]);
    });
  }

  setReplayPaused(route: string, paused: boolean): Promise<void> {
    return this.#run(async () => {
      await this.#pool.query(
        paused ? PAUSE_REPLAY : RESUME_REPLAY,
        paused ? [route, this.#clock.now()] : [route],
      );
    });
  }

  bringForward(route: string, limit = Number.MAX_SAFE_INTEGER): Promise<number> {
    return this.#run(async () => {
      const { rowCount } = await this.#pool.query(BRING_FORWARD, [route, this.#clock.now(), limit]);
      return rowCount ?? 0;
    });
  }

  setRouteHealth(route: string, health: StoredRouteHealth): Promise<void> {
    return this.#run(async () => {
      const { state, cause, since, until } = health;
      await this.#pool.query({
        name: 'spillway_set_route_health',
        text: SET_ROUTE_HEALTH,
        values: [route, state, cause, since, until, this.#clock.now()],
      });
    });
  }

  routeHealth(): Promise<Record<string, StoredRouteHealth>> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({ name: 'spillway_route_health', text: ROUTE_HEALTH });
      return Object.fromEntries((rows as Row[]).map((row) => [String(row.route), storedRouteHealthOf(row)]));
    });
  }

  keepStaleCopy(copy: StaleCopy, bounds: StaleCopyBounds): Promise<{ kept: boolean; evicted: number }> {
    const stored = staleCopyColumns(copy, this.#sealer);
    return this.#run(async () => {
      const { rowCount } = await this.#pool.query({
        name: 'spillway_keep_stale_copy',
        text: KEEP_STALE_COPY,
        values: [
          copy.resource,
          copy.variant,
          copy.route,
          JSON.stringify(copy.vary),
          copy.response.status,
          stored.headers,
          stored.body,
          staleCopySize(copy),
          copy.storedAt,
          copy.initialAge,
          copy.expiresAt,
          copy.lastUsedAt,
        ],
      });
      const evicted = await this.#pool.query({
        name: 'spillway_evict_stale_copies',
        text: EVICT_STALE_COPIES,
        values: [bounds.maxEntries, bounds.maxBytes],
      });
      return { kept: rowCount === 1, evicted: evicted.rowCount ?? 0 };
    });
  }

  staleCopies(resource: string): Promise<StaleCopy[]> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({
        name: 'spillway_stale_copies',
        text: STALE_COPIES,
        values: [resource],
      });
      return readableStaleCopies(rows as Row[], (value) => value, this.#sealer, this.#onError);
    });
  }

  useStaleCopy(resource: string, variant: string, now: number): Promise<void> {
    return this.#run(async () => {
      await this.#pool.query({
        name: 'spillway_use_stale_copy',
        text: USE_STALE_COPY,
        values: [resource, variant, now],
      });
    });
  }

  dropStaleCopies(resource: string): Promise<number> {
    return this.#run(async () => (await this.#pool.query(DROP_STALE_COPIES, [resource])).rowCount ?? 0);
  }

  purgeStaleCopies(now: number, limit: number): Promise<number> {
    return this.#run(async () => (await this.#pool.query(PURGE_STALE_COPIES, [now, limit])).rowCount ?? 0);
  }

  pausedReplays(): Promise<Record<string, number>> {
    return this.#run(async () => {
      const { rows } = await this.#pool.query({ name: 'spillway_paused_replays', text: PAUSED_REPLAYS });
      return Object.fromEntries((rows as Row[]).map((row) => [String(row.route), Number(row.paused_at)]));
    });
  }

  async #read(id: string): Promise<Operation | undefined> {
    const { rows } = await this.#pool.query({
      name: 'spillway_get',
      text: `SELECT ${OPERATION_COLUMNS} FROM operations WHERE id = $1`,
      values: [id],
    });
    return rows[0] ? toOperation(rows[0], this.#sealer) : undefined;
  }

  /**
   * The leased rows, decrypted. One this process cannot decrypt is handed back untouched (as a lost
   * lease is) and reported, so the rest are replayed while the operator adds the key the error names.
   */
  async #openLeased(rows: Row[]): Promise<LeasedOperation[]> {
    const leased: LeasedOperation[] = [];
    for (const row of rows) {
      try {
        leased.push(toLeasedOperation(row, this.#sealer));
      } catch (error) {
        if (!(error instanceof StoredValueUnreadableError)) throw error;
        await this.#pool.query({
          name: 'spillway_hand_back_unreadable',
          text: `UPDATE operations SET ${CLEAR_LEASE} WHERE id = $1 AND lease_token = $2`,
          values: [row.id, row.lease_token],
        });
        this.#onError(error);
      }
    }
    return leased;
  }

  /** One batch per transaction on one client; the gateways sharing the store wait only on a batch's rows. */
  rekey(options?: RekeyOptions): Promise<RekeySummary> {
    return this.#run(() =>
      rekeyStoredValues(
        {
          transaction: async (work) => {
            const client = await this.#pool.connect();
            try {
              await client.query('BEGIN');
              const tx: RekeyTransaction = {
                all: async (sql, params) => (await client.query(numbered(sql), params)).rows as Row[],
                run: async (sql, params) => {
                  await client.query(numbered(sql), params);
                },
              };
              const value = await work(tx);
              await client.query('COMMIT');
              return value;
            } catch (error) {
              await client.query('ROLLBACK').catch(this.#onError);
              throw error;
            } finally {
              client.release();
            }
          },
          json: (value) => value,
          lockRows: ' FOR UPDATE',
        },
        this.#sealer,
        options,
      ),
    );
  }

  /** Writes the captures already queued, lets verbs in progress finish, then closes the pool. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#busy.size > 0) await Promise.allSettled([...this.#busy]);
    // Not handed back, they run out and are recovered as a crashed holder's would be: told, not thrown,
    // so that the pool still ends.
    if (this.#lostLeases.size > 0) await this.#handBackLostLeases().catch(this.#onError);
    this.#watchers.clear();
    await Promise.all([this.#listener.stop(), this.#pool.end()]);
  }

  /** Tells every watcher that a commit touched `id`. A watcher that throws does not keep the others from hearing. */
  #tell(id: string): void {
    for (const watcher of this.#watchers) {
      try {
        watcher(id);
      } catch (error) {
        // Not swallowed: a broken watcher is a bug, reported like any uncaught error.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  #run<T>(verb: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(closedError());
    return this.#track(
      verb().catch((error: unknown) => {
        throw asStoreError(error, this.#location);
      }),
    );
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#busy.add(promise);
    const done = () => this.#busy.delete(promise);
    promise.then(done, done);
    return promise;
  }

  /** A fenced verb: one UPDATE, retried through a passing outage (see the header). */
  #changed(name: string, text: string, values: unknown[]): Promise<boolean> {
    return this.#run(async () => {
      const giveUpAt = Date.now() + FENCED_RETRY_WINDOW_MS;
      for (let tries = 0; ; tries++) {
        try {
          const changed = (await this.#pool.query({ name, text, values })).rowCount === 1;
          if (changed) this.#tell(values[0] as string);
          return changed;
        } catch (error) {
          const pause = FENCED_RETRY_PAUSES_MS[Math.min(tries, FENCED_RETRY_PAUSES_MS.length - 1)]!;
          if (!isUnavailable(error) || Date.now() + pause > giveUpAt) throw error;
          // Node's own timer, like the driver's timeouts: this waits for a network, not for a due time.
          await new Promise((resolve) => setTimeout(resolve, pause));
        }
      }
    });
  }

  /**
   * Leases taken by calls whose answer never came: released as if never taken, attempts untouched.
   * Their rows are found by the call's part of their tokens, among the leases that run out when that
   * call's would (a range of the lease-expiry index), not by a walk of every row.
   */
  async #handBackLostLeases(): Promise<void> {
    for (const [token, { owner, from, to }] of this.#lostLeases) {
      await this.#pool.query(
        `UPDATE operations SET ${CLEAR_LEASE}
         WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NOT NULL
           AND lease_expires_at BETWEEN $3 AND $4 AND lease_owner = $2 AND starts_with(lease_token, $1)`,
        [`${token}.`, owner, from, to],
      );
      this.#lostLeases.delete(token);
    }
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#flushes >= MAX_CAPTURE_FLUSHES || this.#captures.length === 0) return;
    this.#flushScheduled = true;
    // On the next turn of the event loop, so captures arriving in this one share the INSERT.
    setImmediate(() => {
      this.#flushScheduled = false;
      while (this.#flushes < MAX_CAPTURE_FLUSHES && this.#captures.length > 0) {
        const batch = this.#captures.splice(0, MAX_CAPTURE_BATCH);
        this.#flushes++;
        void this.#insert(batch).finally(() => {
          this.#flushes--;
          this.#scheduleFlush();
        });
      }
    });
  }

  async #insert(batch: PendingCapture[]): Promise<void> {
    // A second capture of an id in the same batch loses to the first, as it would one commit later.
    const firsts = new Map<string, PendingCapture>();
    for (const pending of batch) {
      if (firsts.has(pending.row.id)) pending.reject(duplicateError(pending.row.id));
      else firsts.set(pending.row.id, pending);
    }
    const rows = [...firsts.values()];
    try {
      const inserted = await this.#insertRows(rows);
      for (const pending of rows) {
        const keyBlocked = inserted.get(pending.row.id);
        if (keyBlocked === undefined) pending.reject(duplicateError(pending.row.id));
        else pending.resolve({ ...pending.row, keyBlocked });
      }
      for (const id of inserted.keys()) this.#tell(id);
    } catch (error) {
      const failure = asStoreError(error, this.#location);
      if (failure instanceof StoreUnavailableError || rows.length === 1) {
        for (const pending of rows) pending.reject(failure);
        return;
      }
      // Something in one row sank the batch: write each alone, so only that one fails.
      await Promise.all(rows.map((pending) => this.#insert([pending])));
    }
  }

  /**
   * One INSERT for every row; resolves with the ids written (the others already existed), each
   * with whether it was blocked behind its ordering key's head.
   */
  async #insertRows(pending: PendingCapture[]): Promise<Map<string, boolean>> {
    const columns = [...INSERT_COLUMNS, ...KEY_COLUMNS].map(() => [] as unknown[]);
    // Keyed rows in key order (a stable sort: one key's rows keep their capture order), so that two
    // batches take their keys' advisory locks (migration 024) in the same order and never deadlock.
    const keyOf = ({ row }: PendingCapture) =>
      row.orderingKey === null ? '' : `${row.route}/${row.orderingKey}`;
    const inKeyOrder = [...pending].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
    for (const { row, idempotency, firstAttempt, webhookSubscriptions, leaseToken } of inKeyOrder) {
      const request = this.#sealer.seal(row.request.headers, row.request.body, messageRow.request(row.id));
      const values = [
        row.id,
        row.route,
        row.request.method,
        row.request.path,
        row.request.query,
        request.headers,
        asBuffer(request.body),
        row.status,
        row.attempts,
        row.nextAttemptAt,
        row.leaseOwner,
        row.leaseExpiresAt,
        row.outcomeUnknown,
        row.priority,
        row.idempotencyKey,
        row.tenant,
        row.traceparent,
        row.tracestate,
        row.createdAt,
        row.callbackUrl,
        webhookSubscriptions,
        row.failoverReason,
        leaseToken,
        row.orderingKey,
        idempotency?.key ?? null,
        idempotency?.token ?? null,
        ...attemptValues(firstAttempt).slice(1),
      ];
      values.forEach((value, i) => {
        columns[i]!.push(value);
      });
    }
    const { rows } = await this.#pool.query({ name: 'spillway_capture', text: INSERT, values: columns });
    return new Map((rows as Row[]).map((row) => [String(row.id), row.key_blocked === true]));
  }
}

// Columns of a capture and their types, in the order of the INSERT's arrays.
const INSERT_COLUMNS = [
  ['id', 'text'],
  ['route', 'text'],
  ['method', 'text'],
  ['path', 'text'],
  ['query', 'text'],
  ['request_headers', 'jsonb'],
  ['request_body', 'bytea'],
  ['status', 'text'],
  ['attempts', 'integer'],
  ['next_attempt_at', 'bigint'],
  ['lease_owner', 'text'],
  ['lease_expires_at', 'bigint'],
  ['outcome_unknown', 'boolean'],
  ['priority', 'integer'],
  ['idempotency_key', 'text'],
  ['tenant', 'text'],
  ['traceparent', 'text'],
  ['tracestate', 'text'],
  ['created_at', 'bigint'],
  ['callback_url', 'text'],
  ['webhook_subscriptions', 'jsonb'],
  ['failover_reason', 'text'],
  ['lease_token', 'text'],
  // Its place in the key's queue (key_seq, key_blocked) is set by migration 024's trigger.
  ['ordering_key', 'text'],
] as const;

// The Idempotency-Key claim each capture holds, if any: marked accepted by the same statement; and the
// failed sync attempt before the capture, if any, logged by it too (the order of attemptValues).
const KEY_COLUMNS = [
  ['claim_key', 'text'],
  ['claim_token', 'text'],
  ['first_started_at', 'bigint'],
  ['first_duration_ms', 'bigint'],
  ['first_outcome', 'text'],
  ['first_upstream_status', 'integer'],
  ['first_error', 'text'],
] as const;

const OPERATION_NAMES = INSERT_COLUMNS.map(([name]) => name).join(', ');
const INSERT = `WITH batch AS (
    SELECT * FROM unnest(${[...INSERT_COLUMNS, ...KEY_COLUMNS].map(([, type], i) => `$${i + 1}::${type}[]`).join(', ')})
      AS batch (${[...INSERT_COLUMNS, ...KEY_COLUMNS].map(([name]) => name).join(', ')})
  ), inserted AS (
    INSERT INTO operations (${OPERATION_NAMES}, updated_at)
    SELECT ${OPERATION_NAMES}, created_at FROM batch
    ON CONFLICT (id) DO NOTHING
    RETURNING id, key_blocked
  ), accepted AS (
    UPDATE idempotency_keys AS k SET state = 'accepted', operation_id = b.id
    FROM batch AS b JOIN inserted USING (id)
    WHERE k.key = b.claim_key AND k.token = b.claim_token AND k.state = 'in-progress'
  ), first_attempts AS (
    INSERT INTO operation_attempts (operation_id, attempt, started_at, duration_ms, outcome, upstream_status, error)
    SELECT b.id, b.attempts, b.first_started_at, b.first_duration_ms, b.first_outcome, b.first_upstream_status,
      b.first_error
    FROM batch AS b JOIN inserted USING (id) WHERE b.first_started_at IS NOT NULL
  )
  SELECT id, key_blocked FROM inserted`;

// Named, not *, so that a column added by a later migration does not break statements prepared before it.
const OPERATION_COLUMNS = `id, route, method, path, query, request_headers, request_body, status, attempts,
  next_attempt_at, lease_owner, lease_expires_at, outcome_unknown, result_status, result_headers, result_body,
  error, dead_lettered_at, priority, idempotency_key, tenant, callback_url, traceparent, tracestate, created_at,
  updated_at, failover_reason, redriven_at, attempts_at_redrive, discarded_at, ordering_key, key_blocked`;

const CLEAR_LEASE = 'lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL';
// A lease's writes are fenced by its token: once it was handed back or taken over, they change nothing.
// `status || ''` keeps the status test out of the planner's index choice, so the row is found by its
// primary key: as `status = 'Running'` it was a key of operations_by_status (status, created_at, id),
// whose Running range the statistics put at a row or two (only the leases held are Running), and the
// planner took that range, reading with it the entry each operation leased since the last vacuum left
// there: a complete read 65 pages at the start of a 30,000-replay drain, 420 at its end.
export const FENCED = `WHERE id = $1 AND lease_token = $2 AND status || '' = 'Running'`;

/** Expired leases handed back per lease call at most; the rest go at the next. */
export const HAND_BACK_BATCH = 100;

// An ordering key's queue (migration 024): its unfinished operations and its dead letter, if any.
const IN_KEY_QUEUE = `(status IN ('NotStarted', 'Running') OR dead_lettered_at IS NOT NULL)`;
/** One probe of the key-queue index (migration 024). */
export const KEY_PENDING = `SELECT 1 FROM operations
  WHERE route = $1 AND ordering_key = $2 AND ${IN_KEY_QUEUE} LIMIT 1`;
// Dead letters are few (an index of them, migration 001); each blocked key's queue is counted by its index.
const BLOCKED_KEYS = `SELECT d.id, d.route, d.ordering_key, d.dead_lettered_at,
    (SELECT count(*) FROM operations AS q
      WHERE q.route = d.route AND q.ordering_key = d.ordering_key
        AND (q.status IN ('NotStarted', 'Running') OR q.dead_lettered_at IS NOT NULL)) - 1 AS waiting
  FROM operations AS d
  WHERE d.dead_lettered_at IS NOT NULL AND d.ordering_key IS NOT NULL
  ORDER BY d.dead_lettered_at LIMIT $1`;

// Retention: a range read of the finished-operations index (migration 008), oldest first.
export const PURGE = `DELETE FROM operations WHERE id IN (SELECT id FROM operations
    WHERE status IN ('Succeeded', 'Failed', 'Canceled') AND updated_at < $1
    ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)`;

// Kept by migration 008's trigger: a few rows per route, status and slot, whatever the backlog.
export const COUNTS =
  'SELECT status, dead_lettered, sum(n) AS n FROM operation_counts GROUP BY status, dead_lettered';

// One statement, so one commit whose answer is either had or lost as a whole (see #lostLeases):
// - `lost` hands back expired leases ($8 at most): their holder is taken to have died mid-attempt, so
//   that attempt is counted, the outcome unknown, and the operation due again from the moment the
//   lease ran out; its token goes with it, fencing the holder off. A range read of the lease-expiry
//   index (migration 003). They are leased from the next call on: this statement's snapshot still
//   sees them held.
// - `groups` walks the (priority, route) groups of free operations, highest priority first, one
//   seek of the due index (migration 008) per group: the greatest (priority, route) below the last.
// - `candidates` reads each leasable group's due operations as a range of that index, in due order,
//   at most $4 per group, skipping rows another lease call holds: never the whole backlog. Equalities
//   on priority and route, not a row-value range: PostgreSQL (before 18) ends a B-tree scan on a
//   row comparison's first column only, so `(priority, route, next_attempt_at) <= (…)` read on
//   through every later group of the same priority, a walk of the backlog behind a route with
//   nothing due (docs/benchmarks.md).
// - the UPDATE claims the first $4 of them in replay order (priority, then due time): a sort of at most
//   $4 rows per group. Each lease gets its own token, and lasts as long as its route asks ($7, by route
//   name; else $3).
export const LEASE = `WITH RECURSIVE lost AS (
    UPDATE operations AS o SET
      attempts = o.attempts + 1, outcome_unknown = true, next_attempt_at = o.lease_expires_at,
      ${CLEAR_LEASE}, updated_at = $2
    FROM (SELECT id FROM operations
      WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NOT NULL AND lease_expires_at <= $2
      ORDER BY lease_expires_at LIMIT $8
      FOR UPDATE SKIP LOCKED) AS expired
    WHERE o.id = expired.id
  ), groups AS (
    ${DUE_GROUPS}
  ), candidates AS (
    SELECT c.id, g.priority, c.next_attempt_at FROM groups AS g CROSS JOIN LATERAL (
      SELECT id, next_attempt_at FROM operations
      WHERE ${FREE} AND priority = g.priority AND route = g.route AND next_attempt_at <= $2::bigint
      ORDER BY next_attempt_at LIMIT $4
      FOR UPDATE SKIP LOCKED) AS c
    WHERE g.route <> ALL ($6::text[]) AND ($9::text[] IS NULL OR g.route = ANY ($9::text[]))
      AND CASE WHEN left(g.route, 3) = 'fn:' THEN g.route = ANY ($10::text[]) ELSE $11::boolean END
  ), due AS (
    SELECT id FROM candidates ORDER BY priority DESC, next_attempt_at, id LIMIT $4
  )
  UPDATE operations AS o SET
    status = 'Running',
    lease_owner = $1, lease_token = $5 || '.' || gen_random_uuid(),
    lease_expires_at = $2 + coalesce(($7::jsonb ->> o.route)::bigint, $3), updated_at = $2
  FROM due WHERE o.id = due.id
  RETURNING ${OPERATION_COLUMNS.replace(/(\w+)/g, 'o.$1')}, o.lease_token`;

function resultValues(sealer: MessageSealer, id: string, result: StoredResponse | null): unknown[] {
  const stored = result ? sealer.seal(result.headers, result.body, messageRow.result(id)) : null;
  return [result?.status ?? null, stored?.headers ?? null, stored ? asBuffer(stored.body) : null];
}

function answerValues(sealer: MessageSealer, key: string, response: StoredResponse): unknown[] {
  const stored = sealer.seal(response.headers, response.body, messageRow.idempotentAnswer(key));
  return [response.status, stored.headers, asBuffer(stored.body)];
}

/** `?` placeholders (the SQL both adapters share) as PostgreSQL's $1, $2, … */
const numbered = (sql: string): string => {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
};

/** Records the key new values are sealed under, then refuses to open if any recorded key is not listed. */
async function recordKeys(client: PoolClient, sealer: MessageSealer, display: string): Promise<void> {
  const newest = sealer.newestKeyId;
  if (newest) {
    await client.query(
      'INSERT INTO store_keys (key_id, first_used_at) VALUES ($1, $2) ON CONFLICT DO NOTHING',
      [newest, Date.now()],
    );
  }
  const { rows } = await client.query('SELECT key_id FROM store_keys ORDER BY first_used_at');
  checkStoreKeys(
    (rows as Row[]).map((row) => String(row.key_id)),
    sealer,
    display,
  );
}

const asBuffer = (bytes: Uint8Array) =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

// This adapter's reading of the shared rows (operation-row.ts): PostgreSQL's booleans and parsed JSON.
const toOperation = (row: Row, sealer: MessageSealer): Operation => operationOf(row, sealer, postgresValues);
const toLeasedOperation = (row: Row, sealer: MessageSealer): LeasedOperation =>
  leasedOperationOf(row, sealer, postgresValues);

/** A lease call whose answer was lost: its owner, and the range its leases' expiries fall in. */
interface LostLease {
  owner: string;
  from: number;
  to: number;
}

const toIdempotencyRecord = (row: Row, key: string, sealer: MessageSealer): IdempotencyRecord =>
  idempotencyRecordOf(row, key, sealer, postgresValues);

/** The server process id behind a pooled client (the driver keeps it, untyped), to recognise its notifications. */
const backendOf = (client: unknown): number | undefined => {
  const pid = (client as { processID?: unknown }).processID;
  return typeof pid === 'number' ? pid : undefined;
};

const closedError = () => new StoreUnavailableError('The store is closed.');
const duplicateError = (id: string) =>
  new DuplicateOperationError(`An operation with id ${id} already exists.`);
