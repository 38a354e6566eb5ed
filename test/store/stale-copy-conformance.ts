/**
 * The stale-copy verbs of the OperationStore port (migration 022): keeping the
 * last 2xx answer per resource and variant, never rolling it back, bounds by
 * entries and bytes with the least recently used evicted first, dropping and
 * purging. Every adapter passes it unchanged, with a ManualClock for exact times.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StaleCopy } from '../../src/store/port.ts';
import type { ManualClock } from '../support/manual-clock.ts';
import { type StoreFactory, storeFixture } from './store-fixture.ts';

const roomy = { maxEntries: 100, maxBytes: 1_000_000 };

function copy(clock: ManualClock, overrides: Partial<StaleCopy> & { body?: string } = {}): StaleCopy {
  const { body = 'A', ...rest } = overrides;
  return {
    resource: 'r1',
    variant: 'v1',
    route: 'prices',
    vary: ['accept-language'],
    response: {
      status: 200,
      headers: [
        ['content-type', 'text/plain'],
        ['x-multi', '1'],
        ['x-multi', '2'],
      ],
      body: new Uint8Array(Buffer.from(body)),
    },
    storedAt: clock.now(),
    initialAge: 0,
    expiresAt: clock.now() + 60_000,
    lastUsedAt: clock.now(),
    ...rest,
  };
}

const bodies = (copies: StaleCopy[]) => copies.map((c) => Buffer.from(c.response.body).toString());

export function staleCopyConformance(name: string, factory: StoreFactory): void {
  describe(`OperationStore stale copies: ${name}`, () => {
    const fx = storeFixture(factory);

    it('keeps a copy byte for byte, across reopening, one per variant', async () => {
      const first = copy(fx.clock, { initialAge: 7 });
      assert.deepEqual(await fx.store.keepStaleCopy(first, roomy), { kept: true, evicted: 0 });
      await fx.store.keepStaleCopy(
        copy(fx.clock, { variant: 'v2', vary: ['accept-language'], body: 'B' }),
        roomy,
      );
      await fx.store.close();
      fx.store = await fx.reopen();
      const copies = await fx.store.staleCopies('r1');
      assert.deepEqual(bodies(copies), ['A', 'B']);
      const [kept] = copies;
      assert.deepEqual(
        { ...kept, response: { ...kept!.response, body: [...kept!.response.body] } },
        {
          ...first,
          response: { ...first.response, body: [...first.response.body] },
        },
      );
      assert.deepEqual(await fx.store.staleCopies('r2'), []);
    });

    it('replaces a copy with a newer answer, never with an older one', async () => {
      await fx.store.keepStaleCopy(copy(fx.clock, { body: 'A' }), roomy);
      fx.clock.advance(1_000);
      assert.equal((await fx.store.keepStaleCopy(copy(fx.clock, { body: 'B' }), roomy)).kept, true);
      const older = copy(fx.clock, { body: 'old', storedAt: fx.clock.now() - 500 });
      assert.equal((await fx.store.keepStaleCopy(older, roomy)).kept, false);
      assert.deepEqual(bodies(await fx.store.staleCopies('r1')), ['B']);
    });

    it('evicts the least recently used past maxEntries; answering with a copy counts as a use', async () => {
      for (const resource of ['a', 'b', 'c']) {
        await fx.store.keepStaleCopy(copy(fx.clock, { resource, lastUsedAt: fx.clock.now() }), roomy);
        fx.clock.advance(10);
      }
      await fx.store.useStaleCopy('a', 'v1', fx.clock.now());
      fx.clock.advance(10);
      const result = await fx.store.keepStaleCopy(copy(fx.clock, { resource: 'd' }), {
        ...roomy,
        maxEntries: 3,
      });
      assert.deepEqual(result, { kept: true, evicted: 1 });
      assert.equal((await fx.store.staleCopies('b')).length, 0, 'b was the least recently used');
      for (const kept of ['a', 'c', 'd']) assert.equal((await fx.store.staleCopies(kept)).length, 1, kept);
    });

    it('evicts the least recently used past maxBytes, counting bodies and header sections', async () => {
      const size = (c: StaleCopy) => c.response.body.byteLength + JSON.stringify(c.response.headers).length;
      const big = 'x'.repeat(400);
      const first = copy(fx.clock, { resource: 'a', body: big });
      await fx.store.keepStaleCopy(first, roomy);
      fx.clock.advance(10);
      await fx.store.keepStaleCopy(
        copy(fx.clock, { resource: 'b', body: big, lastUsedAt: fx.clock.now() }),
        roomy,
      );
      fx.clock.advance(10);
      const third = copy(fx.clock, { resource: 'c', body: big, lastUsedAt: fx.clock.now() });
      const bound = { maxEntries: 100, maxBytes: size(first) * 2 + 10 };
      assert.deepEqual(await fx.store.keepStaleCopy(third, bound), { kept: true, evicted: 1 });
      assert.deepEqual(await fx.store.staleCopies('a'), []);
      assert.equal((await fx.store.staleCopies('b')).length, 1);
      assert.equal((await fx.store.staleCopies('c')).length, 1);
      // One copy larger than the whole bound is not kept at all.
      const huge = copy(fx.clock, { resource: 'h', body: 'y'.repeat(2_000), lastUsedAt: fx.clock.now() + 1 });
      await fx.store.keepStaleCopy(huge, bound);
      assert.deepEqual(await fx.store.staleCopies('h'), []);
    });

    it('drops every variant of a resource, and purges expired copies oldest first', async () => {
      await fx.store.keepStaleCopy(copy(fx.clock, { variant: 'v1' }), roomy);
      await fx.store.keepStaleCopy(copy(fx.clock, { variant: 'v2' }), roomy);
      await fx.store.keepStaleCopy(copy(fx.clock, { resource: 'other' }), roomy);
      assert.equal(await fx.store.dropStaleCopies('r1'), 2);
      assert.deepEqual(await fx.store.staleCopies('r1'), []);
      assert.equal(await fx.store.dropStaleCopies('r1'), 0);

      await fx.store.keepStaleCopy(
        copy(fx.clock, { resource: 'e1', expiresAt: fx.clock.now() + 1_000 }),
        roomy,
      );
      await fx.store.keepStaleCopy(
        copy(fx.clock, { resource: 'e2', expiresAt: fx.clock.now() + 2_000 }),
        roomy,
      );
      fx.clock.advance(5_000);
      assert.equal(await fx.store.purgeStaleCopies(fx.clock.now(), 1), 1);
      assert.deepEqual(await fx.store.staleCopies('e1'), [], 'the oldest expiry went first');
      assert.equal((await fx.store.staleCopies('e2')).length, 1);
      assert.equal(await fx.store.purgeStaleCopies(fx.clock.now(), 10), 1);
      assert.equal((await fx.store.staleCopies('other')).length, 1, 'unexpired copies stay');
    });
  });
}
