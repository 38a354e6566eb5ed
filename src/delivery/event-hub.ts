/**
 * One watch on the store, fanned out by operation id to the streams that
 * follow it: a notice costs a map lookup, however many clients are connected.
 */
import type { EventLog } from '../store/port.ts';

export class EventHub {
  readonly #followers = new Map<string, Set<() => void>>();
  /** How to end each open stream: called when the hub closes (shutdown). */
  readonly #enders = new Set<() => void>();
  #unwatch: (() => void) | undefined;
  readonly #store: Pick<EventLog, 'watch'>;

  constructor(store: Pick<EventLog, 'watch'>) {
    this.#store = store;
  }

  /**
   * Calls `onChange` whenever the store hints that `operationId` changed, and
   * `onClose` when the hub closes. Returns the function that stops both.
   */
  follow(operationId: string, onChange: () => void, onClose: () => void): () => void {
    this.#unwatch ??= this.#store.watch((id) => {
      for (const notify of this.#followers.get(id) ?? []) notify();
    });
    const set = this.#followers.get(operationId) ?? new Set();
    this.#followers.set(operationId, set);
    set.add(onChange);
    this.#enders.add(onClose);
    return () => {
      this.#enders.delete(onClose);
      set.delete(onChange);
      if (set.size === 0) this.#followers.delete(operationId);
    };
  }

  /** Ends every open stream and stops watching: at shutdown, streams must not hold the port open. */
  close(): void {
    for (const end of [...this.#enders]) end();
    this.#enders.clear();
    this.#unwatch?.();
    this.#unwatch = undefined;
    this.#followers.clear();
  }
}
