/**
 * The SQLite store works on its own thread (issue 11, item 3): while a commit
 * (sealing, writing, fsync) is under way the gateway's event loop keeps
 * turning, and captures that arrive meanwhile share the next commit.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { StoredValueUnreadableError, StoreUnavailableError } from '../../src/errors.ts';
import type { NewOperation, OperationStore } from '../../src/store/port.ts';
import { newStoreKey, StoreKeyring } from '../../src/store/sealed-values.ts';
import { StoreLockedError } from '../../src/store/sqlite/store-lock.ts';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.ts';
import { tempDir } from '../support/harness.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { newOperation } from './conformance.ts';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshPath = () => join(dir, `thread-${files++}.db`);

/** The longest the event loop went without running a 1 ms timer while `work` was pending. */
async function longestStall<T>(work: () => Promise<T>): Promise<{ stallMs: number; elapsedMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  let done = false;
  const tick = () => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
    if (!done) setTimeout(tick, 1);
  };
  setTimeout(tick, 1);
  const start = performance.now();
  await work();
  const elapsedMs = performance.now() - start;
  done = true;
  stallMs = Math.max(stallMs, performance.now() - last);
  return { stallMs, elapsedMs };
}

/** Operations with large bodies: seconds of sealing, writing and fsync for the store. */
const bigOperations = (clock: ManualClock, count: number, bytes: number) =>
  Array.from({ length: count }, () =>
    newOperation(clock, { request: { ...newOperation(clock).request, body: randomBytes(bytes) } }),
  );

const captureAll = (store: OperationStore, operations: NewOperation[]) =>
  Promise.all(operations.map((operation) => store.capture(operation)));

const bigCaptures = (store: OperationStore, clock: ManualClock, count: number, bytes: number) =>
  captureAll(store, bigOperations(clock, count, bytes));

describe('sqlite store thread', () => {
  it('keeps the event loop turning while a commit is under way', async () => {
    const clock = new ManualClock();
    const store = await ThreadedSqliteStore.open({
      path: freshPath(),
      clock,
      encryptionKeys: StoreKeyring.parse(newStoreKey()),
    });
    try {
      await bigCaptures(store, clock, 1, 1024); // opened and warm
      // Made before the measure: generating 48 MB of random bytes is this thread's work, not the store's.
      const operations = bigOperations(clock, 6, 8 << 20);
      const { stallMs, elapsedMs } = await longestStall(() => captureAll(store, operations));
      // In-thread, the whole commit is one stall (stall ≈ elapsed). Handing 48 MB to the thread is a
      // copy; sealing, writing and fsync'ing it are not on this thread.
      assert.ok(
        stallMs < elapsedMs / 3,
        `the event loop stalled ${stallMs.toFixed(1)} ms of a ${elapsedMs.toFixed(1)} ms commit`,
      );
    } finally {
      await store.close();
    }
  });

  it('captures that arrive while a batch commits share the next commit', async () => {
    const clock = new ManualClock();
    const batches: number[] = [];
    const store = await ThreadedSqliteStore.open({
      path: freshPath(),
      clock,
      encryptionKeys: StoreKeyring.parse(newStoreKey()),
      onCommit: (writes) => batches.push(writes),
    });
    try {
      await bigCaptures(store, clock, 1, 1024);
      batches.length = 0;
      const slow = bigCaptures(store, clock, 4, 8 << 20);
      let slowDone = false;
      void slow.then(() => {
        slowDone = true;
      });
      // One small capture per turn of this thread's event loop, while the slow batch commits.
      const small: Promise<unknown>[] = [];
      let sentDuringSlow = 0;
      for (let i = 0; i < 20; i++) {
        small.push(store.capture(newOperation(clock)));
        if (!slowDone) sentDuringSlow++;
        await nextTurn();
      }
      await Promise.all([slow, ...small]);
      assert.equal(sentDuringSlow, 20, 'every small capture was sent while the slow batch was committing');
      assert.equal(
        batches.reduce((a, b) => a + b, 0),
        24,
      );
      assert.ok(batches.length <= 3, `24 captures took ${batches.length} commits: ${batches.join(', ')}`);
    } finally {
      await store.close();
    }
  });

  it('sends the calls made while the thread commits as one message, once the commit answers', async () => {
    // A message per call costs both threads about a tenth of a capture's CPU; the thread could not
    // take the calls before its COMMIT returned anyway.
    const posted: unknown[][] = [];
    const post = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (this: Worker, message: unknown, transfer?: readonly never[]) {
      if (Array.isArray(message)) posted.push(message);
      return post.call(this, message, transfer);
    };
    const clock = new ManualClock();
    const store = await ThreadedSqliteStore.open({
      path: freshPath(),
      clock,
      encryptionKeys: StoreKeyring.parse(newStoreKey()),
    });
    try {
      await bigCaptures(store, clock, 1, 1024);
      posted.length = 0;
      let slowDone = false;
      const slow = bigCaptures(store, clock, 4, 8 << 20).then(() => {
        slowDone = true;
      });
      const small: Promise<unknown>[] = [];
      for (let i = 0; i < 20; i++) {
        await nextTurn();
        small.push(store.capture(newOperation(clock)));
      }
      assert.equal(
        slowDone,
        false,
        'the slow batch was still committing when the last small capture was made',
      );
      await Promise.all([slow, ...small]);
      assert.deepEqual(
        posted.map((calls) => calls.length),
        [4, 20],
        'the 4 slow captures went as one message, the 20 made in 20 turns while they committed as one more',
      );
    } finally {
      Worker.prototype.postMessage = post;
      await store.close();
    }
  });

  it('resolves a capture only once its commit returned: it is there after a reopen', async () => {
    const path = freshPath();
    const clock = new ManualClock();
    const store = await ThreadedSqliteStore.open({ path, clock });
    const captured = await store.capture(newOperation(clock));
    await store.close();
    const again = await ThreadedSqliteStore.open({ path, clock });
    try {
      assert.equal((await again.get(captured.id))?.id, captured.id);
    } finally {
      await again.close();
    }
  });

  it('refuses a second writer with StoreLockedError, and close() hands the file on', async () => {
    const path = freshPath();
    const first = await ThreadedSqliteStore.open({ path, exclusive: true });
    await assert.rejects(ThreadedSqliteStore.open({ path, exclusive: true }), StoreLockedError);
    await first.close();
    const second = await ThreadedSqliteStore.open({ path, exclusive: true });
    await second.close();
  });

  it('rejects with the error classes the in-thread store throws', async () => {
    const path = freshPath();
    const clock = new ManualClock();
    const sealed = await ThreadedSqliteStore.open({
      path,
      clock,
      encryptionKeys: StoreKeyring.parse(newStoreKey()),
    });
    const { id } = await sealed.capture(newOperation(clock));
    await sealed.close();
    await assert.rejects(sealed.get(id), StoreUnavailableError);
    await assert.rejects(sealed.capture(newOperation(clock)), StoreUnavailableError);
    // Opened without its key on purpose (the start-up check is past): the row cannot be read.
    const { DatabaseSync } = await import('node:sqlite');
    const db = new DatabaseSync(path);
    db.exec('DELETE FROM store_keys');
    db.close();
    const plain = await ThreadedSqliteStore.open({ path, clock });
    try {
      await assert.rejects(plain.get(id), (error: Error) => {
        assert.ok(error instanceof StoredValueUnreadableError, String(error));
        assert.equal(error.reason, 'no-key');
        return true;
      });
    } finally {
      await plain.close();
    }
  });

  it('sends a body as its own bytes, not with the shared pool it was cut from', async () => {
    // Buffer.concat of a small body is a slice of Node's 64 KiB allocation pool; posted as it is,
    // every message to the store thread would copy the whole pool, on both sides.
    const pooled = (text: string) => Buffer.concat([Buffer.from(text)], text.length);
    assert.ok(pooled('body').buffer.byteLength > 4, 'this Node no longer pools small buffers');
    const posted: unknown[] = [];
    const post = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (this: Worker, message: unknown, transfer?: readonly never[]) {
      posted.push(message);
      return post.call(this, message, transfer);
    };
    const clock = new ManualClock();
    const store = await ThreadedSqliteStore.open({ path: freshPath(), clock });
    try {
      const request = { ...newOperation(clock).request, body: pooled('{"amount":1}') };
      const captured = await store.capture(
        newOperation(clock, {
          request,
          lease: { owner: 'w1', token: 't1', expiresAt: clock.now() + 60_000 },
        }),
      );
      const response = { status: 200, headers: [], body: pooled('{"ok":true}') };
      await store.complete(captured.id, 't1', response);
      const claim = {
        key: 'k1',
        token: 'c1',
        fingerprint: 'f',
        lockedUntil: clock.now() + 1_000,
        expiresAt: clock.now() + 60_000,
      };
      await store.claimIdempotencyKey(claim);
      await store.completeIdempotencyKey('k1', 'c1', response);
      const copy = {
        resource: 'r',
        variant: 'v',
        route: 'default',
        vary: [],
        response,
        storedAt: clock.now(),
        initialAge: 0,
        expiresAt: clock.now() + 60_000,
        lastUsedAt: clock.now(),
      };
      await store.keepStaleCopy(copy, { maxEntries: 10, maxBytes: 1_000_000 });
    } finally {
      Worker.prototype.postMessage = post;
      await store.close();
    }
    const sent = new Map<string, number>();
    const visit = (value: unknown, verb: string): void => {
      if (value instanceof Uint8Array) sent.set(verb, Math.max(sent.get(verb) ?? 0, value.buffer.byteLength));
      else if (value !== null && typeof value === 'object')
        for (const inner of Object.values(value)) visit(inner, verb);
    };
    for (const message of posted)
      if (Array.isArray(message))
        for (const call of message as Array<{ verb: string; args: unknown[] }>) visit(call.args, call.verb);
    assert.deepEqual(Object.fromEntries(sent), {
      capture: 12,
      complete: 11,
      completeIdempotencyKey: 11,
      keepStaleCopy: 11,
    });
  });

  it('answers a capture with the row as stored, when its commit is later than its call', async () => {
    // The thread answers a capture with what the store decided and the caller builds the rest: the
    // times must be the store's (its commit's clock), not the call's.
    const clock = new ManualClock();
    const store = await ThreadedSqliteStore.open({ path: freshPath(), clock });
    try {
      const first = store.capture(newOperation(clock));
      clock.advance(5);
      const second = store.capture(newOperation(clock));
      for (const captured of await Promise.all([first, second])) {
        const stored = await store.get(captured.id);
        assert.equal(captured.createdAt, stored?.createdAt);
        assert.equal(captured.updatedAt, stored?.updatedAt);
      }
    } finally {
      await store.close();
    }
  });

  it('reports what fails outside a verb to onError, and tells watchers of each commit', async () => {
    const path = freshPath();
    const clock = new ManualClock();
    const keys = StoreKeyring.parse(newStoreKey());
    const sealed = await ThreadedSqliteStore.open({ path, clock, encryptionKeys: keys });
    const unreadable = await sealed.capture(newOperation(clock));
    await sealed.close();
    const { DatabaseSync } = await import('node:sqlite');
    const db = new DatabaseSync(path);
    db.exec('DELETE FROM store_keys');
    db.close();
    const reported: unknown[] = [];
    const store = await ThreadedSqliteStore.open({ path, clock, onError: (error) => reported.push(error) });
    try {
      const watched: string[] = [];
      store.watch((id) => watched.push(id));
      const readable = await store.capture(newOperation(clock));
      assert.deepEqual(watched, [readable.id]);
      const leased = await store.lease({ owner: 'w1', limit: 10, leaseMs: 1_000 });
      assert.deepEqual(
        leased.map((op) => op.id),
        [readable.id],
      );
      assert.equal(reported.length, 1);
      assert.ok(reported[0] instanceof StoredValueUnreadableError);
      assert.match(String((reported[0] as Error).message), new RegExp(unreadable.id));
    } finally {
      await store.close();
    }
  });
});
