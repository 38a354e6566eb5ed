/**
 * The stale-copy verbs of the OperationStore port (migration 022): keeping the
 * last 2xx answer per resource and variant, never rolling it back, bounds by
 * entries and bytes with the least recently used evicted first, dropping and
 * purging. Every adapter passes it unchanged, with a ManualClock for exact times.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { OperationStore, StaleCopy } from '../../src/store/port.ts';
import { ManualClock } from '../support/manual-clock.ts';
import type { StoreFactory } from './conformance.ts';

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
    let clock: ManualClock;
    let store: OperationStore;
    let reopen: () => Promise<OperationStore>;
    beforeEach(async () => {
      clock = new ManualClock();
      ({ store, reopen } = await factory(clock));
    });
    afterEach(async () => {
      await store.close();
    });

    it('keeps a copy byte for byte, across reopening, one per variant', async () => {
      const first = copy(clock, { initialAge: 7 });
      assert.deepEqual(await store.keepStaleCopy(first, roomy), { kept: true, evicted: 0 });
      await store.keepStaleCopy(copy(clock, { variant: 'v2', vary: ['accept-language'], body: 'B' }), roomy);
      await store.close();
      store = await reopen();
      const copies = await store.staleCopies('r1');
      assert.deepEqual(bodies(copies), ['A', 'B']);
      const [kept] = copies;
      assert.deepEqual(
        { ...kept, response: { ...kept!.response, body: [...kept!.response.body] } },
        {
          ...first,
          response: { ...first.response, body: [...first.response.body] },
        },
      );
      assert.deepEqual(await store.staleCopies('r2'), []);
    });

    it('replaces a copy with a newer answer, never with an older one', async () => {
      await store.keepStaleCopy(copy(clock, { body: 'A' }), roomy);
      clock.advance(1_000);
      assert.equal((await store.keepStaleCopy(copy(clock, { body: 'B' }), roomy)).kept, true);
      const older = copy(clock, { body: 'old', storedAt: clock.now() - 500 });
      assert.equal((await store.keepStaleCopy(older, roomy)).kept, false);
      assert.deepEqual(bodies(await store.staleCopies('r1')), ['B']);
    });

    it('evicts the least recently used past maxEntries; answering with a copy counts as a use', async () => {
      for (const resource of ['a', 'b', 'c']) {
        await store.keepStaleCopy(copy(clock, { resource, lastUsedAt: clock.now() }), roomy);
        clock.advance(10);
      }
      await store.useStaleCopy('a', 'v1', clock.now());
      clock.advance(10);
      const result = await store.keepStaleCopy(copy(clock, { resource: 'd' }), { ...roomy, maxEntries: 3 });
      assert.deepEqual(result, { kept: true, evicted: 1 });
      assert.equal((await store.staleCopies('b')).length, 0, 'b was the least recently used');
      for (const kept of ['a', 'c', 'd']) assert.equal((await store.staleCopies(kept)).length, 1, kept);
    });

    it('evicts the least recently used past maxBytes, counting bodies and header sections', async () => {
      const size = (c: StaleCopy) => c.response.body.byteLength + JSON.stringify(c.response.headers).length;
      const big = 'x'.repeat(400);
      const first = copy(clock, { resource: 'a', body: big });
      await store.keepStaleCopy(first, roomy);
      clock.advance(10);
      await store.keepStaleCopy(copy(clock, { resource: 'b', body: big, lastUsedAt: clock.now() }), roomy);
      clock.advance(10);
      const third = copy(clock, { resource: 'c', body: big, lastUsedAt: clock.now() });
      const bound = { maxEntries: 100, maxBytes: size(first) * 2 + 10 };
      assert.deepEqual(await store.keepStaleCopy(third, bound), { kept: true, evicted: 1 });
      assert.deepEqual(await store.staleCopies('a'), []);
      assert.equal((await store.staleCopies('b')).length, 1);
      assert.equal((await store.staleCopies('c')).length, 1);
      // One copy larger than the whole bound is not kept at all.
      const huge = copy(clock, { resource: 'h', body: 'y'.repeat(2_000), lastUsedAt: clock.now() + 1 });
      await store.keepStaleCopy(huge, bound);
      assert.deepEqual(await store.staleCopies('h'), []);
    });

    it('drops every variant of a resource, and purges expired copies oldest first', async () => {
      await store.keepStaleCopy(copy(clock, { variant: 'v1' }), roomy);
      await store.keepStaleCopy(copy(clock, { variant: 'v2' }), roomy);
      await store.keepStaleCopy(copy(clock, { resource: 'other' }), roomy);
      assert.equal(await store.dropStaleCopies('r1'), 2);
      assert.deepEqual(await store.staleCopies('r1'), []);
      assert.equal(await store.dropStaleCopies('r1'), 0);

      await store.keepStaleCopy(copy(clock, { resource: 'e1', expiresAt: clock.now() + 1_000 }), roomy);
      await store.keepStaleCopy(copy(clock, { resource: 'e2', expiresAt: clock.now() + 2_000 }), roomy);
      clock.advance(5_000);
      assert.equal(await store.purgeStaleCopies(clock.now(), 1), 1);
      assert.deepEqual(await store.staleCopies('e1'), [], 'the oldest expiry went first');
      assert.equal((await store.staleCopies('e2')).length, 1);
      assert.equal(await store.purgeStaleCopies(clock.now(), 10), 1);
      assert.equal((await store.staleCopies('other')).length, 1, 'unexpired copies stay');
    });
  });
}
