/**
 * A 5,000-operation backlog after an outage, over real HTTP on the embedded
 * store: the operations wait on their backoff (due ten minutes later), the route
 * diverts; once the upstream is back, a replay probe passes, the backlog is
 * brought forward and drains at once, well before any of it falls due, beside
 * an upstream that serves 8 requests at a time and refuses more with 503: the
 * adaptive limit keeps to its capacity (few refusals). The rate is reported,
 * not asserted: on a loaded machine it is bound by the store's commits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newOperation } from '../store/store-fixture.ts';
import { startGateway } from '../support/harness.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const BACKLOG = 5_000;
const CAPACITY = 8;
const SERVICE_MS = 10;

describe('a 5,000-operation backlog after an outage', () => {
  it('brings the backlog forward once the upstream is back and drains it within the upstream’s capacity', async (t) => {
    const upstream = await new TestUpstream().start();
    let healthy = false;
    let refused = 0;
    upstream.behaviour = () => {
      if (!healthy) return { kind: 'respond', status: 503 };
      if (upstream.inFlight.size > CAPACITY) {
        refused++;
        return { kind: 'respond', status: 503 };
      }
      return { kind: 'delay', ms: SERVICE_MS, and: { kind: 'respond', status: 201, body: 'ok' } };
    };
    try {
      await using gw = await startGateway({
        upstream: upstream.url,
        replay: { concurrency: 16 },
        routeDefaults: { backoff: { initialMs: 500, maxMs: 2_000 }, health: { minCalls: 5 } },
      });
      for (let i = 0; i < 5; i++)
        assert.equal((await fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: 'x' })).status, 202);
      assert.equal(gw.health.snapshot()[0]?.state, 'diverting');
      const due = new ManualClock(Date.now() + 600_000);
      await Promise.all(
        Array.from({ length: BACKLOG }, () => gw.store.capture(newOperation(due, { route: 'default' }))),
      );
      healthy = true;
      const back = Date.now();
      // The first probe that passes brings the whole backlog forward: due now, not in ten minutes.
      for (;;) {
        const next = await gw.store.nextDueAt();
        if (next !== undefined && next <= Date.now()) break;
        assert.ok(
          Date.now() - back < 5_000,
          'the backlog was brought forward within 5 s of the upstream’s return',
        );
        await new Promise((r) => setTimeout(r, 20));
      }
      const forward = Date.now() - back;
      // Then it drains, at whatever pace this machine's store allows: the first 1,000, long before any was due.
      const DRAINED = 1_000;
      for (;;) {
        const counts = await gw.store.counts();
        if (counts.Succeeded >= DRAINED) break;
        assert.ok(Date.now() - back < 100_000, `drained ${counts.Succeeded} of ${DRAINED} in 100 s`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const ms = Date.now() - back;
      const rate = Math.round((DRAINED / ms) * 1000);
      const capacity = (CAPACITY * 1000) / SERVICE_MS;
      t.diagnostic(
        `backlog of ${BACKLOG} due ${forward} ms after the upstream came back; ${DRAINED} drained in ${ms} ms: ${rate}/s against an upstream capacity of ${capacity}/s; ${refused} replays refused over capacity`,
      );
      assert.ok(refused < DRAINED / 10, `${refused} replays refused: the adaptive limit found the capacity`);
    } finally {
      await upstream.stop();
    }
  });
});
