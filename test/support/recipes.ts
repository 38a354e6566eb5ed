/**
 * One suite for every framework recipe of docs/embedding.md (examples/*.ts):
 * the app is served on loopback by the real framework, and the test calls it
 * over real HTTP. Its payment provider is the test's: fast, down or slow.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { type PaymentProvider, ProviderUnavailable } from '../../examples/payment-provider.ts';
import { testConfig } from './embedded.ts';
import { jsonOf, operationIdOf, tempDir } from './harness.ts';

export class TestProvider implements PaymentProvider {
  mode: 'well' | 'down' | 'slow' = 'well';
  readonly calls: unknown[] = [];
  #release: () => void = () => {};
  #released = Promise.resolve();

  async charge(order: unknown) {
    this.calls.push(order);
    if (this.mode === 'down') throw new ProviderUnavailable('the provider is down');
    if (this.mode === 'slow') await this.#released;
    return { paymentId: `pay_${this.calls.length}`, order };
  }

  /** From now on calls hang until `release()`. */
  hang(): void {
    this.mode = 'slow';
    this.#released = new Promise((resolve) => {
      this.#release = resolve;
    });
  }

  release(): void {
    this.#release();
  }
}

/**
 * The recipe's config with quick replays. The budget is not short: a fast
 * answer must stay sync on a loaded machine, and the slow handler is held by
 * the test, not by a timer.
 */
export const recipeSettings = testConfig({
  routes: [{ name: 'payments', match: 'POST /payments', budgetMs: 1_500 }],
});

export interface ServedApp {
  url: string;
  stop(): Promise<void>;
}

export function recipeSuite(
  framework: string,
  serve: (provider: TestProvider, store: string) => Promise<ServedApp>,
): void {
  describe(`${framework} recipe`, () => {
    let dir: string;
    let provider: TestProvider;
    let app: ServedApp;
    beforeEach(async () => {
      dir = tempDir();
      provider = new TestProvider();
      app = await serve(provider, join(dir, 'spillway.db'));
    });
    afterEach(async () => {
      provider.release();
      await app.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    const pay = (amount: number) =>
      fetch(`${app.url}/payments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ amount }),
      });
    const settled = async (id: string) => {
      const until = Date.now() + 15_000;
      for (;;) {
        const monitor = await jsonOf(await fetch(`${app.url}/_spillway/operations/${id}`));
        if (['Succeeded', 'Failed', 'Canceled'].includes(monitor.status)) return monitor;
        assert.ok(Date.now() < until, `operation ${id} still ${monitor.status}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };

    it('a fast handler answers sync, as the framework wrote it', async () => {
      const res = await pay(1);
      assert.equal(res.status, 201);
      assert.deepEqual(await res.json(), { paymentId: 'pay_1', order: { amount: 1 } });
      assert.equal(provider.calls.length, 1);
      const health = await fetch(`${app.url}/health`);
      assert.equal(await health.text(), 'ok', 'routes left outside Spillway are served directly');
    });

    it('a failing handler gets a 202; replay calls it again, and the result is read from /_spillway/', async () => {
      provider.mode = 'down';
      const res = await pay(2);
      assert.equal(res.status, 202);
      const id = operationIdOf(res);
      while (provider.calls.length < 2) await new Promise((r) => setTimeout(r, 10)); // replayed, still down
      provider.mode = 'well';
      const monitor = await settled(id);
      assert.equal(monitor.status, 'Succeeded');
      const result = await fetch(`${app.url}/_spillway/operations/${id}/result`);
      assert.equal(result.status, 201);
      assert.deepEqual((await jsonOf(result)).order, { amount: 2 });
      assert.ok(provider.calls.length >= 3);
    });

    it('a handler that outlives the budget gets a 202, and its own answer completes the operation', async () => {
      provider.hang();
      const res = await pay(3);
      assert.equal(res.status, 202);
      assert.match(res.headers.get('spillway-failover-reason') ?? '', /adopted/);
      const id = operationIdOf(res);
      provider.release();
      const monitor = await settled(id);
      assert.equal(monitor.status, 'Succeeded');
      assert.equal(provider.calls.length, 1, 'the adopted call is not made again');
      const result = await fetch(`${app.url}/_spillway/operations/${id}/result`);
      assert.equal(result.status, 201);
      assert.deepEqual(await result.json(), { paymentId: 'pay_1', order: { amount: 3 } });
    });
  });
}
