/**
 * maxBacklog (invariant 3): past the bound, a request that would be captured
 * is answered 503 backlog-full with Retry-After, nothing is stored, and a warn
 * line and a `backlog:full` event say so. Per route and global; the count
 * comes from the store, so operations already waiting before a restart count.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BacklogBound } from '../../src/engine/backlog-bound.ts';
import { LifecycleEvents } from '../../src/events/lifecycle.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { newOperation } from '../store/store-fixture.ts';
import { eventOf, recordEvents } from '../support/events.ts';
import { jsonOf, startGateway } from '../support/harness.ts';
import { capturedLogger } from '../support/log-lines.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { sample } from '../support/prometheus.ts';
import { closedPort } from '../support/test-upstream.ts';

describe('maxBacklog', () => {
  it('answers 503 backlog-full with Retry-After past a route’s bound, stores nothing, and says so in a warn line', async () => {
    const { logger, lines } = capturedLogger('info');
    const events = new LifecycleEvents();
    const seen = recordEvents(events);
    await using gw = await startGateway(
      {
        upstream: `http://127.0.0.1:${await closedPort()}`,
        routes: [{ name: 'payments', match: 'POST /payments', maxBacklog: 2 }],
        maxBacklog: 3,
      },
      undefined,
      { logger, events },
    );
    const post = (path: string) => fetch(`${gw.publicUrl}${path}`, { method: 'POST', body: 'x' });
    assert.equal((await post('/payments')).status, 202);
    assert.equal((await post('/payments')).status, 202);
    const refused = await post('/payments');
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('content-type'), 'application/problem+json');
    assert.equal(refused.headers.get('retry-after'), '30');
    const problem = await jsonOf(refused);
    assert.equal(problem.code, 'backlog-full');
    assert.match(problem.detail, /route payments already has 2 operations waiting \(its maxBacklog is 2\)/);
    const full = await eventOf(events, seen, 'backlog:full');
    assert.deepEqual([full.route, full.scope, full.backlog, full.limit], ['payments', 'route', 2, 2]);
    const line = lines.find((l) => l.event === 'backlog:full');
    assert.deepEqual([line?.level, line?.route, line?.limit], ['warn', 'payments', 2]);
    const metrics = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text();
    assert.equal(sample(metrics, 'spillway_backlog_full_total{route="payments",scope="route"}'), 1);

    // Other routes still capture, up to the global bound of 3.
    assert.equal((await post('/orders')).status, 202);
    const global = await post('/orders');
    assert.equal(global.status, 503);
    assert.match((await jsonOf(global)).detail, /3 operations are already waiting \(maxBacklog is 3\)/);
    const counts = await gw.store.counts();
    assert.equal(counts.NotStarted + counts.Running, 3, 'nothing refused was stored');
  });

  it('reads the store at most once per refresh, counts its own captures meanwhile, and sees what drained', async () => {
    const clock = new ManualClock();
    const store = new SqliteStore({ path: ':memory:', clock });
    let reads = 0;
    const counting = {
      routeCounts: () => {
        reads++;
        return store.routeCounts();
      },
    };
    const bound = new BacklogBound(counting, clock, { global: undefined, routes: new Map([['default', 2]]) });
    await store.capture(newOperation(clock));
    assert.deepEqual(await bound.check('default'), { full: false });
    bound.captured('default');
    assert.deepEqual(await bound.check('default'), { full: true, scope: 'route', backlog: 2, limit: 2 });
    assert.equal(reads, 1, 'within the refresh the cached count is used');
    assert.deepEqual(await bound.check('other'), { full: false }, 'an unbounded route is not counted');
    const [op] = await store.lease({ owner: 'w', limit: 1, leaseMs: 1_000 });
    await store.complete(op!.id, 'w', { status: 200, headers: [], body: new Uint8Array() });
    clock.advance(1_000);
    assert.deepEqual(await bound.check('default'), { full: false }, 'the backlog drained: room again');
    assert.equal(reads, 2);
    await store.close();
  });
});
