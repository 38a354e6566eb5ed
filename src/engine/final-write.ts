/**
 * The write that ends an attempt (complete, retry or fail) is the one write
 * whose loss costs something: without it the lease runs out and the next
 * holder sees the outcome as unknown, so a payment that went through may be
 * dead-lettered instead of answered. A store that is briefly unavailable
 * (SQLITE_BUSY, a PostgreSQL failover) gets a few more tries, all within the
 * lease's margin (LEASE_MARGIN_MS, 5 s); any other error is not retried.
 */
import type { Clock } from '../clock.ts';
import { StoreUnavailableError } from '../errors.ts';

/**
 * An attempt's outcome that could not be written after every retry: the
 * operation keeps its lease until it expires and is then replayed with its
 * outcome unknown. Nothing is lost, but a person should look.
 */
export class FinalWriteError extends Error {
  override name = 'FinalWriteError';
}

/** Delays before each further try: 3.1 s in all, inside the lease margin. */
const FINAL_WRITE_DELAYS_MS = [100, 200, 400, 800, 1_600];

export async function finalWrite<T>(clock: Clock, what: string, write: () => Promise<T>): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await write();
    } catch (error) {
      const delay = FINAL_WRITE_DELAYS_MS[tries - 1];
      if (!(error instanceof StoreUnavailableError)) throw error;
      if (delay === undefined) {
        throw new FinalWriteError(
          `${what} could not be recorded after ${tries} tries (${error.message}); the lease will run out and the operation be replayed with its outcome unknown.`,
          { cause: error },
        );
      }
      await new Promise<void>((resolve) => clock.setTimeout(resolve, delay));
    }
  }
}
