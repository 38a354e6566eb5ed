/**
 * After an outage ends, over real HTTP: the route probes once its open period
 * is over and reverts within the configured probing time, new requests are
 * answered synchronously again, and the backlog drains beside them without
 * the upstream ever seeing more than replay.concurrency replays plus the live
 * requests at once. While the route diverts, its backlog only probes: one
 * replay at a time, at the probe cadence; the first that passes ends the open
 * period early (docs/policy.md, "A drain that follows recovery").
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonOf, startGateway } from '../support/harness.ts';
import { runLoad } from '../support/load.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const OUTAGE_MS = 1_000;
const LOAD_MS = 4_000;
const CLIENTS = 4;
const REPLAY_CONCURRENCY = 3;
const MIN_PROBING_MS = 200;
const RAMP_MS = 500;
const PROBE_INTERVAL_MS = 500;

interface Seen {
  state: string;
  since: number;
  openMs: number;
  backlog: number;
}

describe('after an outage', () => {
  it('serves new requests synchronously again within the probing time while the backlog drains beside them, within the replay limit', async (t) => {
    const upstream = await new TestUpstream().start();
    const start = Date.now();
    const outage = () => Date.now() - start < OUTAGE_MS;
    upstream.behaviour = () =>
      outage()
        ? { kind: 'respond', status: 503, body: 'down' }
        : { kind: 'delay', ms: 30, and: { kind: 'respond', status: 201, body: 'created' } };
    // Live requests carry x-live; a replay does not (it is not a captured header).
    const replays: number[] = [];
    let peakReplays = 0;
    let peakTotal = 0;
    let overlap = false;
    upstream.onArrival = (inFlight) => {
      const live = [...inFlight].filter((r) => r.headers['x-live']).length;
      const replaying = inFlight.size - live;
      if (!upstream.received.at(-1)?.headers['x-live']) replays.push(Date.now());
      if (replaying > 0 && live > 0) overlap = true;
      peakReplays = Math.max(peakReplays, replaying);
      peakTotal = Math.max(peakTotal, inFlight.size);
    };
    await using gw = await startGateway({
      upstream: upstream.url,
      replay: { concurrency: REPLAY_CONCURRENCY },
      routeDefaults: {
        budgetMs: 1_000,
        health: {
          windowMs: 2_000,
          bucketMs: 200,
          minCalls: 5,
          slowCallMs: 300,
          openMs: 1_500,
          openJitter: 0.1,
          probeShare: 0.5,
          probeCalls: 3,
          minProbingMs: MIN_PROBING_MS,
          rampMs: RAMP_MS,
          probeIntervalMs: PROBE_INTERVAL_MS,
        },
      },
    });
    const admin = `http://127.0.0.1:${gw.adminPort}`;
    // The route's state as an operator sees it, with the backlog at that moment.
    const seen: Array<Seen & { at: number }> = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const [route] = (await jsonOf(await fetch(`${admin}/api/health`))).routes;
        const counts = await gw.store.counts();
        seen.push({
          at: Date.now(),
          state: route.state,
          since: Date.parse(route.since),
          openMs: route.signals.openMs,
          backlog: counts.NotStarted + counts.Running,
        });
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    try {
      const answers = await runLoad({
        clients: CLIENTS,
        durationMs: LOAD_MS,
        pauseMs: 30,
        send: (n) =>
          fetch(`${gw.publicUrl}/orders`, { method: 'POST', headers: { 'x-live': '1' }, body: `order ${n}` }),
      });
      watching = false;
      await watcher;
      const ended = start + OUTAGE_MS;

      assert.deepEqual(
        answers.filter((a) => a.status !== 201 && a.status !== 202),
        [],
        'every client gets a 201 or a 202',
      );
      const [route] = (await jsonOf(await fetch(`${admin}/api/health`))).routes;
      assert.equal(route.trips, 1);
      assert.equal(route.state, 'sync');

      const diverting = seen.find((s) => s.state === 'diverting');
      const probing = seen.find((s) => s.state === 'probing' && diverting && s.at > diverting.at);
      const reverted = seen.find((s) => s.state === 'sync' && s.at > ended);
      assert.ok(diverting && probing && reverted, 'the route diverted, probed, then came back');
      // Probing starts when the open period ends, or earlier when a replay probe passes.
      const probingFrom = probing.since;
      assert.ok(
        probingFrom <= diverting.since + diverting.openMs + 100,
        'probing began by the end of the open period',
      );
      assert.ok(probingFrom > ended, 'the outage ended while the route was diverting');
      // Probing starts when the open period ends, and the probes are judged after minProbingMs.
      const revertedAt = reverted.since;
      assert.ok(
        revertedAt - probingFrom <= MIN_PROBING_MS + 500,
        `reverted ${revertedAt - probingFrom} ms after the open period ended (minProbingMs ${MIN_PROBING_MS})`,
      );
      const firstSync = answers.find((a) => a.status === 201 && start + a.at > ended)!;
      assert.ok(start + firstSync.at + firstSync.ms - probingFrom <= 500, 'a probe is answered sync at once');
      // Past the ramp, every new request is answered synchronously.
      const afterRamp = answers.filter((a) => start + a.at > revertedAt + RAMP_MS + 100);
      assert.ok(afterRamp.length > 20);
      assert.deepEqual(
        afterRamp.filter((a) => a.status !== 201),
        [],
      );

      // While the route diverted, replays only probed, one at a time at the cadence;
      // the backlog drained beside live sync traffic once it was back.
      const probesWhileDiverting = replays.filter(
        (at) => at > diverting.since + 100 && at < probingFrom - 20,
      );
      for (const [i, at] of probesWhileDiverting.entries()) {
        if (i === 0) continue;
        const gap = at - probesWhileDiverting[i - 1]!;
        assert.ok(
          gap >= PROBE_INTERVAL_MS - 100,
          `replays ${gap} ms apart while diverting: ${probesWhileDiverting}`,
        );
      }
      assert.ok(reverted.backlog > 0, 'the backlog was still there when the route reverted');
      assert.ok(overlap, 'replays and live requests were at the upstream at the same time');
      assert.ok(peakReplays <= REPLAY_CONCURRENCY, `${peakReplays} replays at once`);
      assert.ok(peakTotal <= REPLAY_CONCURRENCY + CLIENTS, `${peakTotal} upstream requests at once`);
      t.diagnostic(
        `recovery: reverted ${revertedAt - ended} ms after the outage ended (${revertedAt - probingFrom} ms of probing), backlog then ${reverted.backlog}; peak replays ${peakReplays}, peak upstream ${peakTotal}`,
      );

      for (const a of answers.filter((x) => x.status === 202))
        assert.equal((await gw.settled(a.id!, 10_000)).status, 'Succeeded');
    } finally {
      watching = false;
      await watcher;
      await upstream.stop();
    }
  });
});
