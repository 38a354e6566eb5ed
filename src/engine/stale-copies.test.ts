/**
 * StaleCopies keeps a busy read's copy with a write a second, not a write a
 * request: the first answer is written at once, later ones within the
 * rewrite interval wait for its end, the newest replacing those waiting
 * (a manual clock, so no sleeping).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { tempDir } from '../../test/support/harness.ts';
import { ManualClock } from '../../test/support/manual-clock.ts';
import { buildConfig } from '../config/config.ts';
import { LifecycleEvents } from '../events/lifecycle.ts';
import { resourceKey } from '../policy/stale-if-error.ts';
import type { OperationStore, StaleCopy, StaleCopyBounds } from '../store/port.ts';
import { SqliteStore } from '../store/sqlite/sqlite-store.ts';
import { REWRITE_INTERVAL_MS, StaleCopies } from './stale-copies.ts';
import type { Upstream } from './upstream.ts';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));

describe('StaleCopies', () => {
  it('writes a copy at most once per rewrite interval, the newest answer last', async () => {
    const clock = new ManualClock();
    const sqlite = new SqliteStore({ path: join(dir, 'throttle.db'), clock });
    const writes: string[] = [];
    // The real store, counting what is written through it.
    const store = new Proxy(sqlite, {
      get(target, name, receiver) {
        if (name === 'keepStaleCopy')
          return (copy: StaleCopy, bounds: StaleCopyBounds) => {
            writes.push(Buffer.from(copy.response.body).toString());
            return target.keepStaleCopy(copy, bounds);
          };
        const value = Reflect.get(target, name, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as OperationStore;
    const route = buildConfig({
      upstream: 'http://127.0.0.1:9',
      routes: [{ name: 'prices', match: 'GET /prices', staleIfErrorMs: 60_000 }],
    }).routes[0]!;
    const copies = new StaleCopies({
      store,
      clock,
      bounds: { maxEntries: 10, maxBytes: 1_000_000, maxCopyBytes: 1_000 },
      upstream: {} as Upstream,
      events: new LifecycleEvents(),
    });
    const read = { tenant: null, method: 'GET', path: '/prices', query: '', headers: [] };
    const answer = (body: string) => ({ status: 200, headers: [], body: new Uint8Array(Buffer.from(body)) });
    try {
      copies.answered(route, read, answer('A'), clock.now());
      await copies.idle();
      for (const body of ['B', 'C', 'D']) copies.answered(route, read, answer(body), clock.now());
      await copies.idle();
      assert.deepEqual(writes, ['A'], 'the answers within the interval wait');
      clock.advance(REWRITE_INTERVAL_MS);
      await new Promise((resolve) => setImmediate(resolve));
      await copies.idle();
      assert.deepEqual(writes, ['A', 'D'], 'then only the newest is written');
      const kept = await store.staleCopies(resourceKey(read));
      assert.equal(Buffer.from(kept[0]!.response.body).toString(), 'D');
      copies.answered(route, read, answer('E'), clock.now());
      await copies.close();
      clock.advance(REWRITE_INTERVAL_MS);
      assert.deepEqual(writes, ['A', 'D'], 'nothing is written after close');
    } finally {
      await store.close();
    }
  });
});
