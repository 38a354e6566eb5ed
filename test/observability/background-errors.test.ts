/**
 * Errors in background work are told on the event stream, not swallowed: a
 * replay worker whose store cannot be read says so at each failed look, and
 * keeps looking.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { buildConfig } from '../../src/config/config.ts';
import { HttpUpstream } from '../../src/engine/upstream.ts';
import { LifecycleEvents } from '../../src/events/lifecycle.ts';
import { replayWorkerFor } from '../../src/ops/process-parts.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { eventOf, recordEvents } from '../support/events.ts';
import { ManualClock } from '../support/manual-clock.ts';

it('a replay worker that cannot read its store emits background:error at each failed look', async () => {
  const clock = new ManualClock();
  const store = new SqliteStore({ path: ':memory:', clock });
  await store.close(); // every verb now rejects: the store is unavailable
  const events = new LifecycleEvents();
  const seen = recordEvents(events);
  const config = buildConfig({ upstream: 'http://127.0.0.1:9', replay: { pollIntervalMs: 1_000 } });
  const upstream = new HttpUpstream(config.upstream);
  const worker = replayWorkerFor(config, { store, upstream, clock, owner: 'w1', events });
  worker.start();
  try {
    clock.advance(0);
    const first = await eventOf(events, seen, 'background:error');
    assert.equal(first.source, 'replay');
    assert.ok(first.error instanceof Error);
    // It keeps trying at the poll interval, and says so again.
    const second = eventOf(events, seen.slice(), 'background:error', (e) => e !== first);
    clock.advance(1_000);
    await second;
  } finally {
    await worker.stop(0);
    await upstream.close();
  }
});
