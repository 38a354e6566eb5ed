/**
 * A black-hole upstream (it accepts connections and never answers) under
 * concurrent load, over real HTTP: hang detection trips the route before any
 * call finishes, after which requests are captured in milliseconds instead of
 * each paying the budget; nothing acknowledged is lost.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonOf, startGateway } from '../support/harness.ts';
import { percentile, runLoad } from '../support/load.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const BUDGET_MS = 2_000;
const CLIENTS = 8;
const REQUESTS = 200;

describe('black-hole upstream', () => {
  it('trips on hung calls, then answers 202 in milliseconds; only the calls in flight at the trip pay the budget, and none is lost', async (t) => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'black-hole' });
    await using gw = await startGateway({
      upstream: upstream.url,
      routeDefaults: {
        budgetMs: BUDGET_MS,
        attemptTimeoutMs: 3_000,
        // The adopted calls end with an unknown outcome; a key lets them be sent again.
        honoursIdempotencyKey: true,
        // openMs: long enough that no probe starts while the load runs.
        health: { windowMs: 2_000, bucketMs: 200, minCalls: 5, slowCallMs: 300, hungCalls: 3, openMs: 5_000 },
      },
    });
    try {
      const answers = await runLoad({
        clients: CLIENTS,
        requests: REQUESTS,
        send: (n) =>
          fetch(`${gw.publicUrl}/orders`, {
            method: 'POST',
            // x-live is not a captured header: replay probes of the backlog do not carry it.
            headers: { 'content-type': 'application/json', 'x-live': '1' },
            body: JSON.stringify({ order: n }),
          }),
      });
      const held = upstream.received.filter((r) => r.headers['x-live']).length;

      assert.equal(answers.length, REQUESTS);
      assert.deepEqual(
        answers.filter((a) => a.status !== 202),
        [],
        'every request is answered 202, none an error',
      );
      // The calls in flight when the route tripped were adopted at the budget; nothing after them waited.
      const paid = answers.filter((a) => a.ms >= BUDGET_MS * 0.9);
      const diverted = answers.filter((a) => a.ms < BUDGET_MS * 0.9);
      assert.ok(paid.length >= 3 && paid.length <= CLIENTS, `${paid.length} requests paid the budget`);
      assert.equal(held, paid.length, 'only the requests that paid the budget reached the upstream');
      for (const a of paid) assert.match(a.reason!, /^budget of 2000 ms spent \(adopted\)$/);
      for (const a of diverted)
        assert.match(a.reason!, /^diverting: hung-calls \d+ in flight over 300 ms >= 3$/);
      const p90 = percentile(
        diverted.map((a) => a.ms),
        90,
      );
      assert.ok(
        p90 < BUDGET_MS / 10,
        `p90 of the diverted 202s is ${p90.toFixed(1)} ms, budget ${BUDGET_MS} ms`,
      );
      t.diagnostic(
        `black hole: ${paid.length} paid the budget; diverted p50 ${percentile(
          diverted.map((a) => a.ms),
          50,
        ).toFixed(1)} ms, p90 ${p90.toFixed(1)} ms`,
      );

      const [route] = (await jsonOf(await fetch(`http://127.0.0.1:${gw.adminPort}/api/health`))).routes;
      assert.equal(route.trips, 1, 'one trip, not one per request');
      assert.equal(route.state, 'diverting');
      assert.match(route.reason, /^hung-calls/);

      // Nothing is lost: every 202 names a stored operation, and each completes once the upstream answers again.
      for (const a of answers) assert.ok(await gw.store.get(a.id!), `operation ${a.id} is stored`);
      upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'created' });
      for (const a of answers) assert.equal((await gw.settled(a.id!, 15_000)).status, 'Succeeded');
    } finally {
      await upstream.stop();
    }
  });
});
