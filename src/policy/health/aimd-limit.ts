/**
 * An adaptive concurrency limit, AIMD (additive increase, multiplicative
 * decrease): each good call raises the limit by 1/limit, each failed or slow
 * call multiplies it by `backoff`; always within [min, max]. Used for the
 * sync path's load shedding and for the replay workers' drain rate.
 */
export interface AimdOptions {
  min: number;
  max: number;
  initial: number;
  /** Multiplier on a bad call, in (0, 1). */
  backoff: number;
}

export class AimdLimit {
  #limit: number;
  readonly #options: AimdOptions;

  constructor(options: AimdOptions) {
    this.#options = options;
    this.#limit = Math.min(options.max, Math.max(options.min, options.initial));
  }

  get limit(): number {
    return Math.floor(this.#limit);
  }

  good(): void {
    this.#limit = Math.min(this.#options.max, this.#limit + 1 / this.#limit);
  }

  bad(): void {
    this.#limit = Math.max(this.#options.min, this.#limit * this.#options.backoff);
  }
}
