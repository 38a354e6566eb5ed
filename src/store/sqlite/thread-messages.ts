/**
 * What the gateway's thread and the SQLite store's thread (store-thread.ts)
 * say to each other, and how an error crosses between them: a thread boundary
 * copies plain data only, so an error travels as its name and fields and is
 * rebuilt as the same class on the other side, keeping `instanceof` working.
 */
import { StoredValueUnreadableError, StoreUnavailableError, type UnreadableReason } from '../../errors.ts';
import type { Operation } from '../port.ts';
import { StoreKeyError } from '../sealed-values.ts';
import { StoreLockedError } from './store-lock.ts';

/** Opening options, as plain data (the keyring travels as its keys' base64). */
export interface ThreadOpenOptions {
  path: string;
  now: number;
  maxSizeBytes?: number;
  exclusive?: boolean;
  encryptionKeys?: string[];
  reportCommits: boolean;
}

/** One verb call. `now` is the caller's clock at the call: the store thread's clock reads it. */
export interface ThreadCall {
  id: number;
  verb: string;
  args: unknown[];
  now: number;
}

/**
 * What the store thread answers to a capture: what the store decided, the time
 * it wrote (its commit's) and whether the operation waits behind its ordering
 * key. The caller builds the rest of the row (threaded-store.ts).
 */
export type CaptureAnswer = Pick<Operation, 'createdAt' | 'keyBlocked'>;

export type ThreadReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: SentError };

export type ThreadMessage =
  | { kind: 'opened' }
  | { kind: 'open-failed'; error: SentError }
  /** Each turn's answers, with the operations the commits in it touched (for watch). */
  | { kind: 'replies'; replies: ThreadReply[]; touched: string[]; commits: number[] }
  /** What the store reports outside a verb's answer (its onError). */
  | { kind: 'error'; error: SentError }
  | { kind: 'progress'; id: number; progress: unknown };

export interface SentError {
  name: string;
  message: string;
  stack?: string | undefined;
  code?: unknown;
  errcode?: unknown;
  row?: string;
  reason?: UnreadableReason;
  keyId?: string | undefined;
}

export function sendableError(error: unknown): SentError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const sent: SentError = { name: error.name, message: error.message, stack: error.stack };
  const fields = error as Error & Partial<Record<'code' | 'errcode', unknown>>;
  if (fields.code !== undefined) sent.code = fields.code;
  if (fields.errcode !== undefined) sent.errcode = fields.errcode;
  if (error instanceof StoredValueUnreadableError) {
    sent.row = error.row;
    sent.reason = error.reason;
    sent.keyId = error.keyId;
  }
  return sent;
}

/** The error as the in-thread store would have thrown it: same class, message and fields. */
export function receivedError(sent: SentError): Error {
  const error = rebuild(sent);
  if (sent.stack) error.stack = `${sent.stack}\n    (in the SQLite store thread)`;
  return error;
}

function rebuild(sent: SentError): Error {
  switch (sent.name) {
    case 'StoreUnavailableError':
      return new StoreUnavailableError(sent.message);
    case 'StoredValueUnreadableError':
      return new StoredValueUnreadableError(sent.row ?? '', sent.reason ?? 'unknown-format', sent.keyId);
    case 'StoreKeyError':
      return new StoreKeyError(sent.message);
    case 'StoreLockedError':
      return new StoreLockedError(sent.message);
    default: {
      const error = Object.assign(new Error(sent.message), {
        ...(sent.code === undefined ? {} : { code: sent.code }),
        ...(sent.errcode === undefined ? {} : { errcode: sent.errcode }),
      });
      error.name = sent.name;
      return error;
    }
  }
}
