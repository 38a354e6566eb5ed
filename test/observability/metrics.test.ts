/**
 * Prometheus /metrics on the admin port: the families the issue names, fed by
 * the lifecycle events and by index-backed store counts read at most once a
 * second, passing `promtool check metrics`; on the gateway and on `spillway
 * worker`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LifecycleEvents } from '../../src/events/lifecycle.ts';
import { Metrics } from '../../src/ops/metrics.ts';
import type { OperationStore } from '../../src/store/port.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { newOperation } from '../store/store-fixture.ts';
import { eventOf, recordEvents } from '../support/events.ts';
import { operationIdOf, startGateway } from '../support/harness.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { promtool, sample } from '../support/prometheus.ts';
import { TestUpstream } from '../support/test-upstream.ts';

describe('/metrics', () => {
  it('counts a capture, its attempts and its dead letter; passes promtool check metrics', async (t) => {
    const upstream = await new TestUpstream().start();
    t.after(() => upstream.stop());
    upstream.behaviour = () => ({ kind: 'respond', status: 503 });
    const events = new LifecycleEvents();
    const seen = recordEvents(events);
    await using gw = await startGateway(
      { upstream: upstream.url, routeDefaults: { maxAttempts: 2, health: { minCalls: 1_000 } } },
      undefined,
      { events },
    );
    const admin = `http://127.0.0.1:${gw.adminPort}`;
    const before = await (await fetch(`${admin}/metrics`)).text();
    assert.equal(sample(before, 'spillway_backlog_operations{route="default"}'), 0);
    assert.equal(sample(before, 'spillway_route_health_state{route="default",state="sync"}'), 1);
    assert.equal(sample(before, 'spillway_route_health_state{route="default",state="diverting"}'), 0);

    const res = await fetch(`${gw.publicUrl}/payments`, { method: 'POST', body: '{}' });
    const id = operationIdOf(res);
    await eventOf(events, seen, 'operation:dead-lettered', (e) => e.operationId === id);
    // Store-derived gauges are cached for a second: wait for the dead letter to show, with a deadline.
    let text = '';
    for (const until = Date.now() + 5_000; ; ) {
      const scrape = await fetch(`${admin}/metrics`);
      assert.equal(scrape.status, 200);
      assert.match(scrape.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      text = await scrape.text();
      if (sample(text, 'spillway_dead_lettered_operations{route="default"}') === 1) break;
      assert.ok(Date.now() < until, 'the dead letter shows within the cache period');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(
      sample(text, 'spillway_operations_captured_total{route="default",reason="upstream-status"}'),
      1,
    );
    assert.equal(sample(text, 'spillway_replay_attempts_total{route="default",outcome="dead-lettered"}'), 1);
    assert.equal(sample(text, 'spillway_backlog_operations{route="default"}'), 0);
    assert.equal(sample(text, 'spillway_sync_duration_seconds_count{route="default"}'), 1);
    assert.ok(text.includes('# TYPE spillway_sync_duration_seconds histogram'));
    assert.equal(sample(text, 'spillway_oldest_due_operation_age_seconds{route="default"}'), 0);
    assert.ok(sample(text, 'process_cpu_seconds_total') !== undefined, 'default process metrics');
    assert.ok(sample(text, 'nodejs_heap_size_used_bytes') !== undefined, 'default Node.js metrics');
    for (const family of [
      'spillway_operations_captured_total',
      'spillway_backlog_operations',
      'spillway_oldest_due_operation_age_seconds',
      'spillway_dead_lettered_operations',
      'spillway_replay_attempts_total',
      'spillway_route_health_state',
      'spillway_sync_duration_seconds',
      'spillway_webhook_deliveries_total',
    ]) {
      assert.ok(text.includes(`# TYPE ${family} `), `${family} is exposed`);
    }
    promtool(['check', 'metrics'], text);
    assert.equal((await fetch(`${admin}/metrics`, { method: 'POST' })).status, 405);
  });
});

describe('Metrics (store-derived gauges)', () => {
  it('reads the oldest due age and counts from the store at most once per cacheMs', async () => {
    const clock = new ManualClock();
    const sqlite = new SqliteStore({ path: ':memory:', clock });
    let reads = 0;
    const store: Pick<OperationStore, 'routeCounts' | 'oldestDueByRoute'> = {
      routeCounts: () => {
        reads++;
        return sqlite.routeCounts();
      },
      oldestDueByRoute: (now) => sqlite.oldestDueByRoute(now),
    };
    const metrics = new Metrics({ events: new LifecycleEvents(), store, clock, routes: ['a', 'b'] });
    try {
      await sqlite.capture(newOperation(clock, { route: 'a', nextAttemptAt: clock.now() }));
      await sqlite.capture(newOperation(clock, { route: 'b', nextAttemptAt: clock.now() + 60_000 }));
      let text = await metrics.render();
      assert.equal(sample(text, 'spillway_backlog_operations{route="a"}'), 1);
      assert.equal(sample(text, 'spillway_backlog_operations{route="b"}'), 1);
      assert.equal(sample(text, 'spillway_oldest_due_operation_age_seconds{route="a"}'), 0);
      assert.equal(reads, 1);

      clock.advance(500);
      await sqlite.capture(newOperation(clock, { route: 'a' }));
      text = await metrics.render();
      assert.equal(reads, 1, 'a scrape within the second reuses the counts');
      assert.equal(sample(text, 'spillway_backlog_operations{route="a"}'), 1);

      clock.advance(4_500);
      text = await metrics.render();
      assert.equal(reads, 2);
      assert.equal(sample(text, 'spillway_backlog_operations{route="a"}'), 2);
      assert.equal(sample(text, 'spillway_oldest_due_operation_age_seconds{route="a"}'), 5);
      assert.equal(sample(text, 'spillway_oldest_due_operation_age_seconds{route="b"}'), 0);
      promtool(['check', 'metrics'], text);
    } finally {
      metrics.close();
      await sqlite.close();
    }
  });
});
