/**
 * A flapping upstream, healthy and failing (503) in alternating one-second
 * phases, under steady load for 20 s: the open period grows with each failed
 * recovery, so the route trips a few times, not once per failing phase; every
 * client gets its answer (sync or 202) and every captured operation completes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonOf, startGateway } from '../support/harness.ts';
import { runLoad } from '../support/load.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const PHASE_MS = 1_000;
const DURATION_MS = 20_000;

describe('flapping upstream', () => {
  it('trips a bounded number of times over 20 s of 1 s phases; no client gets an error and every capture completes', async (t) => {
    const upstream = await new TestUpstream().start();
    let flapping = true;
    const start = Date.now();
    const failing = () => flapping && Math.floor((Date.now() - start) / PHASE_MS) % 2 === 1;
    upstream.behaviour = () =>
      failing()
        ? { kind: 'respond', status: 503, body: 'busy' }
        : { kind: 'respond', status: 201, body: 'created' };
    await using gw = await startGateway({
      upstream: upstream.url,
      replay: { concurrency: 4 },
      routeDefaults: {
        budgetMs: 1_000,
        // Replays meet the failing phases too: give them room to outlast the run.
        maxAttempts: 100,
        backoff: { initialMs: 200, maxMs: 1_000, multiplier: 2 },
        health: {
          windowMs: 2_000,
          bucketMs: 200,
          minCalls: 5,
          slowCallMs: 300,
          openMs: 500,
          maxOpenMs: 8_000,
          probeCalls: 3,
          minProbingMs: 200,
          rampMs: 500,
        },
      },
    });
    const admin = `http://127.0.0.1:${gw.adminPort}`;
    try {
      const answers = await runLoad({
        clients: 4,
        durationMs: DURATION_MS,
        pauseMs: 40,
        send: (n) => fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: `order ${n}` }),
      });
      flapping = false;
      const { routes } = await jsonOf(await fetch(`${admin}/api/health`));
      const counts: Record<string, number> = {};
      for (const a of answers) counts[a.status] = (counts[a.status] ?? 0) + 1;
      t.diagnostic(
        `flapping: ${answers.length} requests ${JSON.stringify(counts)}, trips ${routes[0].trips}`,
      );

      assert.deepEqual(
        answers.filter((a) => a.status !== 201 && a.status !== 202),
        [],
        'every client gets a 201 or a 202',
      );
      assert.ok(
        routes[0].trips >= 1 && routes[0].trips <= 5,
        `${routes[0].trips} trips in 10 failing phases`,
      );

      const ids = answers.filter((a) => a.status === 202).map((a) => a.id!);
      for (const id of ids) assert.equal((await gw.settled(id, 20_000)).status, 'Succeeded');
    } finally {
      await upstream.stop();
    }
  });
});
