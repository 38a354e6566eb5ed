/**
 * Probing that ends under light traffic, over real HTTP: with one request
 * every 2 s, and with no live traffic at all, a route whose upstream is
 * healthy again returns to `sync` within `openMs` + 5 s. Probe results count
 * from the start of probing, and the backlog's replays count as probes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startGateway, type TestGateway } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const OPEN_MS = 2_000;
const routeDefaults = {
  health: {
    minCalls: 3,
    openMs: OPEN_MS,
    openJitter: 0,
    // The defaults otherwise: a 10 s window, a fifth of live requests probe, 5 probes judged.
  },
  // Retries spaced so that the backlog outlives the outage (maxAttempts 10).
  backoff: { initialMs: 200, maxMs: 1_000 },
};

/** A test upstream that `await using` stops, whatever the test's outcome. */
async function startUpstream() {
  const upstream = await new TestUpstream().start();
  return Object.assign(upstream, { [Symbol.asyncDispose]: () => upstream.stop() });
}

/** Resolves with the time the route is in `state`, polling its machine; rejects after `ms`. */
async function until(gw: TestGateway, state: string, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const [route] = gw.health.snapshot();
    if (route?.state === state) return Date.now();
    if (Date.now() > deadline)
      throw new Error(`route still ${route?.state} (${route?.reason}) after ${ms} ms, not ${state}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The route trips on a burst while the upstream fails; the failed and diverted requests are its backlog. */
async function tripOnBurst(gw: TestGateway): Promise<string[]> {
  const answers = await Promise.all(
    Array.from({ length: 8 }, () => fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: 'order' })),
  );
  assert.deepEqual(
    answers.map((r) => r.status),
    Array(8).fill(202),
  );
  await until(gw, 'diverting', 5_000);
  return Promise.all(answers.map(async (r) => ((await r.json()) as { id: string }).id));
}

describe('probing under light traffic', () => {
  it('returns to sync within openMs + 5 s at one request every 2 s', async (t) => {
    await using upstream = await startUpstream();
    let healthy = false;
    upstream.behaviour = () =>
      healthy ? { kind: 'respond', status: 201, body: 'created' } : { kind: 'respond', status: 503 };
    await using gw = await startGateway({ upstream: upstream.url, routeDefaults });
    const ids = await tripOnBurst(gw);
    healthy = true;
    const back = Date.now();
    let sending = true;
    const client = (async () => {
      while (sending) {
        const res = await fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: 'order' });
        if (res.status === 202) ids.push(((await res.json()) as { id: string }).id);
        else await res.arrayBuffer();
        for (let i = 0; i < 100 && sending; i++) await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      const synced = await until(gw, 'sync', OPEN_MS + 5_000 + 1_000);
      t.diagnostic(`back in sync ${synced - back} ms after the upstream recovered (openMs ${OPEN_MS})`);
      assert.ok(synced - back <= OPEN_MS + 5_000, `${synced - back} ms`);
    } finally {
      sending = false;
      await client;
    }
    for (const id of ids) assert.equal((await gw.settled(id)).status, 'Succeeded');
  });

  it('returns to sync within openMs + 5 s with no live traffic at all, on its backlog', async (t) => {
    await using upstream = await startUpstream();
    let healthy = false;
    upstream.behaviour = () =>
      healthy ? { kind: 'respond', status: 201, body: 'created' } : { kind: 'respond', status: 503 };
    await using gw = await startGateway({ upstream: upstream.url, routeDefaults });
    const ids = await tripOnBurst(gw);
    healthy = true;
    const back = Date.now();
    const synced = await until(gw, 'sync', OPEN_MS + 5_000 + 1_000);
    t.diagnostic(`back in sync ${synced - back} ms after the upstream recovered, no live traffic`);
    assert.ok(synced - back <= OPEN_MS + 5_000, `${synced - back} ms`);
    for (const id of ids) assert.equal((await gw.settled(id)).status, 'Succeeded');
  });
});
