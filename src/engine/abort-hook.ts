/**
 * Hearing that an attempt's signal aborted without an event listener. An
 * upstream call listens on its attempt's AbortSignal for as long as it runs,
 * and on the healthy sync path that signal never fires: Node's EventTarget
 * builds a listener map, a root and a Listener for the add and tears them
 * down on the remove, about half a kilobyte of garbage per request. A signal
 * made here (attemptDeadline's) carries one hook instead, called right after
 * the signal aborts, as a listener would be; any other signal gets a listener.
 *
 * It must never lose an abort: the hook is taken before the abort, so it runs
 * exactly once, and a signal already aborted is told at once by the caller.
 */

const HOOK = Symbol('spillway.abortHook');
type Hooked = AbortSignal & { [HOOK]?: (() => void) | null };

/** An AbortController whose signal can carry one hook (`onAbort`). */
export class HookedAbortController {
  readonly #controller = new AbortController();
  readonly signal: AbortSignal;

  constructor() {
    const signal = this.#controller.signal as Hooked;
    signal[HOOK] = null; // hookable, no hook yet
    this.signal = signal;
  }

  abort(reason: unknown): void {
    const signal = this.signal as Hooked;
    if (signal.aborted) return;
    const hook = signal[HOOK];
    signal[HOOK] = null;
    this.#controller.abort(reason);
    hook?.();
  }
}

/**
 * Calls `fn` once `signal` aborts (it has not yet: the caller checks), until
 * `offAbort`. A hookable signal holding no hook takes `fn` as its hook; any
 * other gets an event listener.
 */
export function onAbort(signal: AbortSignal, fn: () => void): void {
  const hooked = signal as Hooked;
  if (hooked[HOOK] === null) hooked[HOOK] = fn;
  else signal.addEventListener('abort', fn, { once: true });
}

/** Stops `onAbort(signal, fn)`; nothing when it was never started, or has run. */
export function offAbort(signal: AbortSignal, fn: () => void): void {
  const hooked = signal as Hooked;
  if (hooked[HOOK] === fn) hooked[HOOK] = null;
  else signal.removeEventListener('abort', fn);
}
