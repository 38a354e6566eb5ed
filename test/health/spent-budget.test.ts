/**
 * Tripping on spent budgets, over real HTTP: clients ask for a 1 s budget
 * (`Prefer: respond-async, wait=1`) in front of a black hole, with the default
 * `slowCallMs` of 3 s. A call that has outlived its own budget counts as hung,
 * so the route trips after about one budget: at most the requests in flight
 * plus `minCalls` pay it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonOf, startGateway } from '../support/harness.ts';
import { runLoad } from '../support/load.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const CLIENTS = 10;
const REQUESTS = 200;
const MIN_CALLS = 10;

describe('a black hole behind short client budgets', () => {
  it('trips after about one budget: at most the requests in flight plus minCalls pay it', async (t) => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'black-hole' });
    try {
      await using gw = await startGateway({
        upstream: upstream.url,
        routeDefaults: {
          budgetMs: 3_000,
          attemptTimeoutMs: 5_000,
          honoursIdempotencyKey: true,
          // The defaults (slowCallMs 3000, hungCalls 3, minCalls 10); openMs keeps probes out of the run.
          health: { minCalls: MIN_CALLS, openMs: 60_000 },
        },
      });
      const answers = await runLoad({
        clients: CLIENTS,
        requests: REQUESTS,
        send: (n) =>
          fetch(`${gw.publicUrl}/orders`, {
            method: 'POST',
            // x-live is not a captured header: replay probes of the backlog do not carry it.
            headers: { prefer: 'respond-async, wait=1', 'x-live': '1' },
            body: `order ${n}`,
          }),
      });
      assert.deepEqual(
        answers.filter((a) => a.status !== 202),
        [],
        'every request is answered 202',
      );
      // A request paid the budget when it was tried and adopted; the others were captured at once.
      const paid = answers.filter((a) => /^budget of \d+ ms spent \(adopted\)$/.test(a.reason ?? ''));
      const live = upstream.received.filter((r) => r.headers['x-live']).length;
      assert.equal(live, paid.length, 'only the requests that paid reached the upstream');
      t.diagnostic(`${paid.length} of ${REQUESTS} requests paid the 1 s budget`);
      assert.ok(
        paid.length <= CLIENTS + MIN_CALLS,
        `${paid.length} requests paid the budget (at most ${CLIENTS + MIN_CALLS})`,
      );
      const [route] = (await jsonOf(await fetch(`http://127.0.0.1:${gw.adminPort}/api/health`))).routes;
      assert.equal(route.state, 'diverting');
      assert.match(route.reason, /^hung-calls \d+ in flight over (9\d\d|1000) ms ≥ 3$/);
    } finally {
      await upstream.stop();
    }
  });
});
