/** Waiting on the lifecycle event stream in tests, with a deadline (never a sleep). */
import type {
  EventOfType,
  LifecycleEvent,
  LifecycleEvents,
  LifecycleEventType,
} from '../../src/events/lifecycle.ts';

/** Records every event from now on. */
export function recordEvents(events: LifecycleEvents): LifecycleEvent[] {
  const seen: LifecycleEvent[] = [];
  events.onAny((e) => {
    seen.push(e);
  });
  return seen;
}

/** Resolves with the first event of `type` matching `match` (already recorded in `seen`, or to come). */
export function eventOf<T extends LifecycleEventType>(
  events: LifecycleEvents,
  seen: readonly LifecycleEvent[],
  type: T,
  match: (e: EventOfType<T>) => boolean = () => true,
  ms = 10_000,
): Promise<EventOfType<T>> {
  const already = seen.find((e) => e.type === type && match(e as EventOfType<T>));
  if (already) return Promise.resolve(already as EventOfType<T>);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no ${type} event within ${ms} ms`));
    }, ms);
    const stop = events.on(type, (e) => {
      if (!match(e)) return;
      clearTimeout(timer);
      stop();
      resolve(e);
    });
  });
}
