/**
 * The SQLite store's own thread (the worker that threaded-store.ts starts):
 * it holds the SqliteStore, so its commits (sealing, writing, fsync) and its
 * reads never run on the gateway's event loop. Calls arrive as messages; the
 * store's group commit batches every write that arrived while the previous
 * batch committed. A verb is answered only once its batch's COMMIT returned.
 *
 * It must never answer a write before its commit, and never keep the thread
 * alive once the store is closed.
 */
import { isMarkedAsUntransferable, parentPort, workerData } from 'node:worker_threads';
import type { Clock } from '../../clock.ts';
import { StoreKeyring } from '../sealed-values.ts';
import { SqliteStore } from './sqlite-store.ts';
import {
  type CaptureAnswer,
  sendableError,
  type ThreadCall,
  type ThreadMessage,
  type ThreadOpenOptions,
  type ThreadReply,
} from './thread-messages.ts';

const port = parentPort as NonNullable<typeof parentPort>;
if (!parentPort) throw new Error('store-thread.ts runs as a worker thread of threaded-store.ts');
const options = workerData as ThreadOpenOptions;
const post = (message: ThreadMessage) => port.postMessage(message, transferablesOf(message));

// Time is the caller's: each call carries its clock's now (an injected clock keeps working).
let now = options.now;
const clock: Clock = {
  now: () => now,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

let replies: ThreadReply[] = [];
let touched: string[] = [];
let commits: number[] = [];
let sending = false;
let closed = false;

/**
 * Every answer of this turn in one message. Sent on the next tick, after the
 * microtask queue has drained: by then every write of the batch that just
 * committed has settled, and the watchers have named what it touched.
 */
function send(reply: ThreadReply): void {
  replies.push(reply);
  if (sending) return;
  sending = true;
  process.nextTick(() => {
    sending = false;
    const message: ThreadMessage = { kind: 'replies', replies, touched, commits };
    replies = [];
    touched = [];
    commits = [];
    post(message);
    // The last answer is out: nothing is left to keep the thread alive.
    if (closed) port.close();
  });
}

const store = open();
if (store) {
  store.watch((id) => touched.push(id));
  port.on('message', (calls: ThreadCall[]) => {
    for (const call of calls) run(store, call);
  });
  post({ kind: 'opened' });
}

function open(): SqliteStore | undefined {
  try {
    return new SqliteStore({
      path: options.path,
      clock,
      onError: (error) => post({ kind: 'error', error: sendableError(error) }),
      ...(options.maxSizeBytes === undefined ? {} : { maxSizeBytes: options.maxSizeBytes }),
      ...(options.exclusive ? { exclusive: true } : {}),
      ...(options.encryptionKeys ? { encryptionKeys: StoreKeyring.parse(options.encryptionKeys) } : {}),
      ...(options.reportCommits ? { onCommit: (writes: number) => commits.push(writes) } : {}),
    });
  } catch (error) {
    // Nothing listens for calls, so the thread ends once this is sent.
    post({ kind: 'open-failed', error: sendableError(error) });
    return undefined;
  }
}

function run(store: SqliteStore, { id, verb, args, now: callNow }: ThreadCall): void {
  now = callNow;
  let answer: Promise<unknown>;
  try {
    answer = dispatch(store, id, verb, args);
  } catch (error) {
    answer = Promise.reject(error);
  }
  answer.then(
    (value) => send({ id, ok: true, value }),
    (error: unknown) => send({ id, ok: false, error: sendableError(error) }),
  );
  if (verb === 'close')
    answer.then(
      () => {
        closed = true;
      },
      () => {
        closed = true;
      },
    );
}

function dispatch(store: SqliteStore, id: number, verb: string, args: unknown[]): Promise<unknown> {
  switch (verb) {
    case 'capture':
      // The caller makes the rest of the row itself (threaded-store.ts).
      return store
        .capture(args[0] as Parameters<SqliteStore['capture']>[0])
        .then(({ createdAt, keyBlocked }): CaptureAnswer => ({ createdAt, keyBlocked }));
    case 'rekey': {
      const { batchSize, progress } = (args[0] ?? {}) as { batchSize?: number; progress?: boolean };
      return store.rekey({
        ...(batchSize === undefined ? {} : { batchSize }),
        ...(progress ? { onProgress: (value) => post({ kind: 'progress', id, progress: value }) } : {}),
      });
    }
    default: {
      const method = (store as unknown as Record<string, unknown>)[verb];
      if (verb === 'watch' || typeof method !== 'function') throw new Error(`no store verb ${verb}`);
      return (method as (...values: unknown[]) => Promise<unknown>).apply(store, args);
    }
  }
}

/**
 * Bodies read from the file are moved, not copied, to the gateway's thread:
 * only byte arrays that own their whole buffer (never a slice of a shared pool).
 */
function transferablesOf(message: ThreadMessage): ArrayBuffer[] {
  if (message.kind !== 'replies') return [];
  const found: ArrayBuffer[] = [];
  const visit = (value: unknown, depth: number): void => {
    if (value === null || typeof value !== 'object' || depth > 4) return;
    if (value instanceof Uint8Array) {
      const { buffer } = value;
      const whole = value.byteOffset === 0 && value.byteLength === buffer.byteLength;
      if (
        buffer instanceof ArrayBuffer &&
        whole &&
        !isMarkedAsUntransferable(buffer) &&
        !found.includes(buffer)
      )
        found.push(buffer);
      return;
    }
    for (const inner of Array.isArray(value) ? value : Object.values(value)) visit(inner, depth + 1);
  };
  for (const reply of message.replies) if (reply.ok) visit(reply.value, 0);
  return found;
}
