/**
 * One watch on the store, fanned out by operation id to the streams that
 * follow it: a notice costs a map lookup, however many clients are connected.
 */
import type { OperationStore } from '../store/port.ts';

export class EventHub {
  readonly #followers = new Map<string, Set<() => void>>();
  #unwatch: (() => void) | undefined;
  readonly #store: OperationStore;

  constructor(store: OperationStore) {
    this.#store = store;
  }

  /** Calls `onChange` whenever the store hints that `operationId` changed. Returns the function that stops it. */
  follow(operationId: string, onChange: () => void): () => void {
    this.#unwatch ??= this.#store.watch((id) => {
      for (const notify of this.#followers.get(id) ?? []) notify();
    });
    const set = this.#followers.get(operationId) ?? new Set();
    this.#followers.set(operationId, set);
    set.add(onChange);
    return () => {
      set.delete(onChange);
      if (set.size === 0) this.#followers.delete(operationId);
    };
  }

  close(): void {
    this.#unwatch?.();
    this.#unwatch = undefined;
    this.#followers.clear();
  }
}
