/**
 * Every error Spillway itself produces, in one table. Over HTTP each becomes an
 * `application/problem+json` document (RFC 9457) whose `type` is stable:
 * `https://spillway.dev/problems/<code>`. `docs/errors.md` lists the same
 * table; a test keeps the two in step.
 */
export const PROBLEM_BASE = 'https://spillway.dev/problems/';

export const errorTable = {
  'bad-request': { status: 400, title: 'Malformed request' },
  'body-too-large': { status: 413, title: 'Request body too large' },
  'invalid-json': { status: 400, title: 'The request body is not valid JSON' },
  'header-too-large': { status: 431, title: 'Request header fields too large' },
  'request-timeout': { status: 408, title: 'The request was not received in time' },
  'expectation-failed': { status: 417, title: 'The Expect header cannot be met' },
  'not-found': { status: 404, title: 'Nothing is served at this path' },
  'operation-not-found': { status: 404, title: 'No such operation' },
  'method-not-allowed': { status: 405, title: 'Method not allowed' },
  'upgrade-required': { status: 426, title: 'This endpoint speaks WebSocket only' },
  'store-unavailable': { status: 503, title: 'The request could not be stored durably' },
  overloaded: { status: 503, title: 'The gateway has too many requests in flight' },
  'upstream-unreachable': { status: 502, title: 'The upstream could not be reached' },
  'upstream-failed': { status: 502, title: 'The upstream connection failed mid-request' },
  'upstream-timeout': { status: 504, title: 'The upstream did not answer in time' },
  'preflight-not-answered': {
    status: 503,
    title: 'The upstream cannot answer this CORS preflight now',
  },
  'attempts-exhausted': { status: 502, title: 'Every replay attempt failed' },
  'max-age-exceeded': { status: 502, title: 'The operation grew too old to replay' },
  'outcome-unknown': { status: 502, title: 'The upstream may or may not have processed the request' },
  'result-too-large': { status: 502, title: 'The upstream response was too large to store' },
  'idempotency-key-invalid': { status: 400, title: 'Malformed Idempotency-Key' },
  'callback-not-allowed': { status: 400, title: 'The Spillway-Callback URL is not allowed' },
  'idempotency-key-missing': { status: 400, title: 'This route requires an Idempotency-Key' },
  'idempotency-key-reused': { status: 422, title: 'Idempotency-Key reused with a different request' },
  'idempotency-key-in-use': { status: 409, title: 'A request with this Idempotency-Key is in progress' },
  'operation-canceled': { status: 409, title: 'The operation was canceled' },
  'operation-running': { status: 409, title: 'The operation has started and cannot be canceled' },
  'origin-not-allowed': { status: 403, title: 'This browser origin may not connect' },
  'too-many-subscriptions': { status: 429, title: 'Too many subscriptions on one WebSocket' },
  'webhook-endpoint-not-disabled': { status: 404, title: 'No webhook endpoint of this name is disabled' },
  'webhook-delivery-not-found': { status: 404, title: 'No such webhook delivery' },
  'webhook-delivery-not-resendable': { status: 409, title: 'The webhook delivery cannot be re-sent' },
  unauthorized: { status: 401, title: 'The admin port needs a valid bearer token' },
  'backlog-full': { status: 503, title: 'The backlog of waiting operations is full' },
  'not-dead-lettered': { status: 409, title: 'The operation is not dead-lettered' },
  'redrive-needs-confirmation': {
    status: 409,
    title: 'The operation may already have reached the upstream',
  },
  'operation-terminal': { status: 409, title: 'The operation has already ended' },
  'ordering-key-pending': {
    status: 409,
    title: 'Earlier requests with this ordering key are still waiting',
  },
  'stored-value-unreadable': {
    status: 500,
    title: 'A stored value cannot be decrypted with the configured store keys',
  },
  'internal-error': { status: 500, title: 'Spillway failed to handle the request' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof errorTable;

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  [extension: string]: unknown;
}

/** Builds the problem document for `code`; `detail` must tell the reader what to do. */
export function problem(code: ErrorCode, detail: string, extensions: Record<string, unknown> = {}): Problem {
  const entry = errorTable[code];
  return { type: PROBLEM_BASE + code, title: entry.title, status: entry.status, detail, code, ...extensions };
}

/** Raised by a store when it cannot make a write durable (disk full, read-only, closed). */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/** Why a sealed value (src/store/sealed-values.ts) did not open. */
export type UnreadableReason =
  /** Sealed, but no storeEncryptionKey is set. */
  | 'no-key'
  /** Sealed under a key that is not in the storeEncryptionKey list. */
  | 'key-missing'
  /** The authentication tag did not match: altered, moved to another row, or corrupt. */
  | 'altered'
  /** Neither plaintext nor a sealed value this version knows. */
  | 'unknown-format';

/**
 * Raised by a store reading a request or response it keeps encrypted
 * (storeEncryptionKey) that it cannot decrypt: never garbage in its place.
 */
export class StoredValueUnreadableError extends Error {
  override name = 'StoredValueUnreadableError';
  readonly row: string;
  readonly reason: UnreadableReason;
  /** The key the value names, when it names one. */
  readonly keyId: string | undefined;

  constructor(row: string, reason: UnreadableReason, keyId: string | undefined, options?: ErrorOptions) {
    super(
      `${row} is encrypted at rest and cannot be read: ${
        reason === 'no-key'
          ? `it was sealed under store key ${keyId} but no storeEncryptionKey is set; set SPILLWAY_STORE_ENCRYPTION_KEY to the keys in use`
          : reason === 'key-missing'
            ? `it was sealed under store key ${keyId}, which is not among the storeEncryptionKey keys; add that key to the list (after the newest)`
            : reason === 'altered'
              ? `it does not authenticate under store key ${keyId}: it was altered or is corrupt`
              : 'its stored format is unknown to this version'
      }.`,
      options,
    );
    this.row = row;
    this.reason = reason;
    this.keyId = keyId;
  }
}
