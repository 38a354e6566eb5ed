/**
 * The store's lifecycle (StoreLifecycle in src/store/port.ts): close. Rekey is
 * in sealing-conformance.ts, which opens stores under several keys.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newOperation, type StoreFactory, storeFixture } from './store-fixture.ts';

export function lifecycleConformance(name: string, factory: StoreFactory): void {
  describe(`StoreLifecycle conformance: ${name}`, () => {
    const fx = storeFixture(factory);

    it('close is safe to call twice, and verbs after close reject', async () => {
      await fx.store.close();
      await fx.store.close();
      await assert.rejects(fx.store.capture(newOperation(fx.clock)), { name: 'StoreUnavailableError' });
      fx.store = await fx.reopen();
    });
  });
}
