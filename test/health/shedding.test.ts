/**
 * Load shedding over real HTTP: past `health.maxConcurrency` sync calls in
 * flight, the excess is captured at once (202, reason "shed: …"), neither
 * queued in memory behind the slow calls nor rejected.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startGateway } from '../support/harness.ts';
import { runLoad } from '../support/load.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const UPSTREAM_MS = 1_000;
const LIMIT = 4;
const CLIENTS = 12;

describe('load shedding', () => {
  it('captures the requests past maxConcurrency at once, instead of queueing or rejecting them', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = (req) =>
      req.url === '/warm-up' ? { kind: 'echo' } : { kind: 'delay', ms: UPSTREAM_MS, and: { kind: 'echo' } };
    let peak = 0;
    upstream.onArrival = (inFlight) => {
      peak = Math.max(peak, inFlight.size);
    };
    await using gw = await startGateway({
      upstream: upstream.url,
      replay: { concurrency: 0 }, // no replay: every upstream call seen here is a sync attempt
      routeDefaults: { budgetMs: 3_000, attemptTimeoutMs: 5_000, health: { maxConcurrency: LIMIT } },
    });
    try {
      // One sync call and one capture first, so the timings below do not include the first connection and write.
      assert.equal((await fetch(`${gw.publicUrl}/warm-up`)).status, 200);
      const warm = await fetch(`${gw.publicUrl}/warm-up`, { headers: { prefer: 'respond-async, wait=0' } });
      assert.equal(warm.status, 202);
      upstream.received.length = 0;

      const answers = await runLoad({
        clients: CLIENTS,
        requests: CLIENTS,
        send: (n) => fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: `order ${n}` }),
      });
      const synced = answers.filter((a) => a.status === 200);
      const shed = answers.filter((a) => a.status === 202);
      assert.equal(synced.length, LIMIT, 'maxConcurrency calls go through, synchronously');
      assert.equal(shed.length, CLIENTS - LIMIT, 'the excess is captured, none rejected');
      for (const a of synced) assert.ok(a.ms >= UPSTREAM_MS * 0.9);
      for (const a of shed) {
        assert.match(a.reason!, /^shed: 4 in flight >= limit 4$/);
        // Queued behind the slow calls, it would have waited for one of them: a whole second.
        assert.ok(a.ms < UPSTREAM_MS / 4, `a shed request is answered at once, not queued (${a.ms} ms)`);
        assert.ok(await gw.store.get(a.id!), 'the shed request is stored');
      }
      assert.equal(peak, LIMIT, 'the upstream never had more than maxConcurrency calls at once');
      assert.equal(upstream.received.length, LIMIT);
    } finally {
      await upstream.stop();
    }
  });
});
