/**
 * Retention: terminal operations (and their events) are deleted once they have
 * been terminal for `retentionMs`; past that an operation answers 404.
 * Idempotency-Key records are deleted once they expire (`idempotencyTtlMs`), and
 * stale copies once older than their route's `staleIfErrorMs`. Runs on
 * a timer in batches, so a large backlog of old operations never holds the
 * store's writer for long; `runOnce()` is the manual trigger for tests.
 */
import type { Clock, Timer } from '../clock.ts';
import type { IdempotencyKeys, OperationQueue, StaleCopyStore } from '../store/port.ts';

/** What retention deletes from: finished operations, expired Idempotency-Key records, stale copies. */
type RetainedStore = Pick<OperationQueue, 'purge'> &
  Pick<IdempotencyKeys, 'purgeIdempotencyKeys'> &
  Pick<StaleCopyStore, 'purgeStaleCopies'>;

const BATCH = 1_000;

export class Retention {
  readonly #store: RetainedStore;
  readonly #clock: Clock;
  readonly #retentionMs: number;
  readonly #everyMs: number;
  #timer: Timer | undefined;

  readonly #onError: (error: unknown) => void;

  /** `onError` is told when a round fails (the store is unavailable); the next round tries again. */
  constructor(store: RetainedStore, clock: Clock, retentionMs: number, onError: (error: unknown) => void) {
    this.#onError = onError;
    this.#store = store;
    this.#clock = clock;
    this.#retentionMs = retentionMs;
    this.#everyMs = Math.min(60_000, Math.max(1_000, Math.floor(retentionMs / 10)));
  }

  /** Deletes every operation past retention, and every expired Idempotency-Key, now; resolves with how many operations. */
  async runOnce(): Promise<number> {
    const now = this.#clock.now();
    const total = await inBatches((limit) => this.#store.purge(now - this.#retentionMs, limit));
    await inBatches((limit) => this.#store.purgeIdempotencyKeys(now, limit));
    // Stale copies past their route's staleIfErrorMs are never answered with again.
    await inBatches((limit) => this.#store.purgeStaleCopies(now, limit));
    return total;
  }

  start(): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.runOnce()
        .catch(this.#onError) // the store is unavailable: the next round tries again
        .finally(() => {
          if (this.#timer) this.start();
        });
    }, this.#everyMs);
    this.#timer.unref?.();
  }

  stop(): void {
    if (this.#timer) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

async function inBatches(purge: (limit: number) => Promise<number>): Promise<number> {
  let total = 0;
  for (;;) {
    const purged = await purge(BATCH);
    total += purged;
    if (purged < BATCH) return total;
  }
}
