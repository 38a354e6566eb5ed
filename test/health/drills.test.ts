/**
 * Drills over real HTTP: with `drillShare` 0.5 on a healthy upstream, about
 * half the requests are sent down the async path on purpose, marked "drill",
 * counted in the health signals, and every one of them completes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonOf, startGateway } from '../support/harness.ts';
import { runLoad } from '../support/load.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const REQUESTS = 200;

describe('drills', () => {
  it('sends about drillShare of healthy traffic async, marked as drills, and completes them all', async (t) => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'created' });
    await using gw = await startGateway({
      upstream: upstream.url,
      routeDefaults: { health: { drillShare: 0.5 } },
    });
    try {
      const answers = await runLoad({
        clients: 4,
        requests: REQUESTS,
        send: (n) => fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: `order ${n}` }),
      });
      const drills = answers.filter((a) => a.status === 202);
      assert.deepEqual(
        answers.filter((a) => a.status !== 201 && a.status !== 202),
        [],
      );
      for (const a of drills) assert.equal(a.reason, 'drill');
      // Binomial(200, 0.5): 100 ± 7; 65..135 is five standard deviations either side.
      assert.ok(drills.length >= 65 && drills.length <= 135, `${drills.length} drills in ${REQUESTS}`);
      t.diagnostic(`drills: ${drills.length} of ${REQUESTS} requests`);

      const [route] = (await jsonOf(await fetch(`http://127.0.0.1:${gw.adminPort}/api/health`))).routes;
      assert.equal(route.state, 'sync');
      assert.equal(route.trips, 0);
      assert.equal(route.signals.drills, drills.length, 'drills are counted as such');
      for (const a of drills) {
        const op = await gw.settled(a.id!, 10_000);
        assert.equal(op.status, 'Succeeded');
      }
      assert.equal(upstream.received.length, REQUESTS, 'each request reached the upstream once');
    } finally {
      await upstream.stop();
    }
  });
});
