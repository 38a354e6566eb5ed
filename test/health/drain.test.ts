/**
 * A drain that follows recovery, over real HTTP: with no live traffic, a
 * route's backlog probes the upstream one replay at a time while it diverts,
 * so the first replay reaches the upstream within 1 s of its return and the
 * backlog then drains at once; and each route is paced on its own, so a route
 * whose upstream refuses with Retry-After never slows another's drain.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startGateway } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

/** A test upstream that `await using` stops, whatever the test's outcome. */
async function startUpstream() {
  const upstream = await new TestUpstream().start();
  return Object.assign(upstream, { [Symbol.asyncDispose]: () => upstream.stop() });
}

const idOf = async (res: Response) => ((await res.json()) as { id: string }).id;

describe('a drain that follows recovery', () => {
  // 2 s ends inside the first open period (5 s), where the operations diverted during the outage
  // are not due yet; 10 s outlasts it.
  for (const outageMs of [2_000, 10_000])
    it(`reaches the upstream within 1 s of its return after a ${outageMs / 1_000} s outage with no live traffic, then drains the backlog`, async (t) => {
      await using upstream = await startUpstream();
      upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'created' });
      await using gw = await startGateway({
        upstream: upstream.url,
        // The default backoff (1 s doubling) and open period (5 s, doubling on a failed recovery).
        routeDefaults: { backoff: { initialMs: 1_000, maxMs: 300_000 }, health: { minCalls: 5 } },
      });
      await upstream.stop(); // connection refused from now on
      const down = Date.now();
      const ids = await Promise.all(
        Array.from({ length: 20 }, async (_, n) => {
          const res = await fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: `order ${n}` });
          assert.equal(res.status, 202);
          return idOf(res);
        }),
      );
      assert.equal(gw.health.snapshot()[0]?.state, 'diverting');
      let firstReplay: number | undefined;
      upstream.onArrival = () => {
        firstReplay ??= Date.now();
      };
      await new Promise((r) => setTimeout(r, outageMs - (Date.now() - down)));
      await upstream.start();
      const back = Date.now();
      for (const id of ids) assert.equal((await gw.settled(id, 15_000)).status, 'Succeeded');
      const drained = Date.now();
      assert.ok(firstReplay !== undefined);
      t.diagnostic(
        `first replay ${firstReplay - back} ms after the upstream came back; ${ids.length} drained in ${drained - back} ms`,
      );
      assert.ok(
        firstReplay - back <= 1_000,
        `first replay ${firstReplay - back} ms after the upstream was back`,
      );
      // Probes the upstream refused were handed back uncounted: the outage did not eat the retry budget.
      for (const id of ids) assert.ok((await gw.store.get(id))!.attempts <= 3);
    });

  it('paces each route on its own: a route refused with Retry-After does not slow the other route’s drain', async (t) => {
    await using upstream = await startUpstream();
    let inFlightOk = 0;
    let peakOk = 0;
    upstream.onArrival = (inFlight) => {
      inFlightOk = [...inFlight].filter((r) => r.url.startsWith('/ok')).length;
      peakOk = Math.max(peakOk, inFlightOk);
    };
    upstream.behaviour = (req) =>
      req.url.startsWith('/fail')
        ? { kind: 'respond', status: 503, headers: { 'retry-after': '30' } }
        : { kind: 'delay', ms: 20, and: { kind: 'respond', status: 201, body: 'ok' } };
    await using gw = await startGateway({
      upstream: upstream.url,
      replay: { concurrency: 4 },
      routes: [
        { name: 'failing', match: 'POST /fail' },
        { name: 'healthy', match: 'POST /ok' },
      ],
    });
    const capture = (path: string) =>
      fetch(`${gw.publicUrl}${path}`, {
        method: 'POST',
        headers: { prefer: 'respond-async, wait=0' },
        body: 'x',
      });
    // The failing route's backlog first: its refusals come in before the healthy route's drain starts.
    for (let i = 0; i < 10; i++) assert.equal((await capture('/fail')).status, 202);
    await new Promise((r) => setTimeout(r, 300));
    const start = Date.now();
    const ids = await Promise.all(Array.from({ length: 100 }, async () => idOf(await capture('/ok'))));
    for (const id of ids) assert.equal((await gw.settled(id, 15_000)).status, 'Succeeded');
    const ms = Date.now() - start;
    t.diagnostic(`100 operations of the healthy route drained in ${ms} ms, up to ${peakOk} at once`);
    assert.ok(
      ms < 15_000,
      `the healthy route drained in ${ms} ms, not held by the other's Retry-After (30 s)`,
    );
    assert.equal(peakOk, 4, 'the healthy route reached its full replay concurrency');
  });
});
