/**
 * The fragile dependency of the embedding examples: a payment provider that
 * is sometimes down and sometimes slow. The examples' routes call it; the
 * tests swap in one they control. Run an example with PROVIDER=down or
 * PROVIDER=slow to see a 202 and the replay that follows.
 */
export interface PaymentProvider {
  charge(order: unknown): Promise<{ paymentId: string; order: unknown }>;
}

/** The provider did not take the order: nothing was charged, so trying again later is safe. */
export class ProviderUnavailable extends Error {
  override name = 'ProviderUnavailable';
}

let next = 0;

/** Down or slow for the first 10 s when PROVIDER says so, then well. */
export function demoProvider(mode = process.env.PROVIDER, recoverAt = Date.now() + 10_000): PaymentProvider {
  return {
    async charge(order) {
      const troubled = Date.now() < recoverAt;
      if (troubled && mode === 'down') throw new ProviderUnavailable('the provider is down');
      if (troubled && mode === 'slow') await new Promise((resolve) => setTimeout(resolve, 5_000));
      return { paymentId: `pay_${++next}`, order };
    },
  };
}
