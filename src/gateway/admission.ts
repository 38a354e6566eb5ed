/**
 * A bound on the requests (or streams) a gateway handles at once, so that
 * memory and work stay bounded (invariant 3): `maxInFlight` for requests on
 * the public port, `sse.maxStreams` for event streams. A place is held from
 * `enter` until the response closes, or until the `leave` it returned is
 * called; past the bound a request is refused 503 overloaded with Retry-After.
 */
import type { ServerResponse } from 'node:http';
import { sendProblem } from './problem-response.ts';

const HOLDER = Symbol('spillway.admission');
type Holding = ServerResponse & { [HOLDER]?: Admission | undefined };

export class Admission {
  readonly #max: number;
  /** What is bounded, for the 503: "requests are in flight (maxInFlight)". */
  readonly #what: string;
  readonly #retryAfterSeconds: number;
  #held = 0;

  constructor(max: number, what: string, retryAfterSeconds: number) {
    this.#max = max;
    this.#what = what;
    this.#retryAfterSeconds = retryAfterSeconds;
  }

  get full(): boolean {
    return this.#held >= this.#max;
  }

  /** Takes a place until `res` closes; returns the way to give it back sooner, or undefined when full. */
  enter(res: ServerResponse): (() => void) | undefined {
    if (this.#held >= this.#max) return undefined;
    this.#held++;
    let held = true;
    const leave = () => {
      if (!held) return;
      held = false;
      this.#held--;
    };
    res.once('close', leave);
    return leave;
  }

  /**
   * Takes a place until `res` closes, with no way to give it back sooner; false when full. One
   * listener function shared by every response, and no `once` wrapper: the place is kept on the
   * response and given back the first time it closes. (`enter` makes a function per request.)
   * One hold per response: the place is kept in a single slot of it. A response that moves from
   * one bound to another (an event stream: in flight, then among the streams) uses `enter`.
   */
  hold(res: ServerResponse): boolean {
    if (this.#held >= this.#max) return false;
    this.#held++;
    (res as Holding)[HOLDER] = this;
    res.on('close', Admission.#onClose);
    return true;
  }

  static readonly #onClose = function (this: Holding): void {
    const admission = this[HOLDER];
    if (admission === undefined) return;
    this[HOLDER] = undefined;
    admission.#held--;
  };

  /** The 503 for a request refused because the bound is full; `advice` is added to the detail. */
  refuse(res: ServerResponse, headers: Record<string, string> = {}, advice = ''): void {
    sendProblem(
      res,
      'overloaded',
      `Over ${this.#max} ${this.#what}. Retry after the Retry-After delay.${advice ? ` ${advice}` : ''}`,
      { ...headers, 'retry-after': this.#retryAfterSeconds },
    );
  }
}
