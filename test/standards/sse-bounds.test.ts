/**
 * Event streams have their own bound (`sse.maxStreams`), like WebSocket
 * connections: open streams do not count against `maxInFlight`, so idle
 * followers cannot turn proxied requests away, and past the bound a new
 * stream is refused 503 overloaded with Retry-After.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonOf, operationIdOf, startGateway } from '../support/harness.ts';
import { closedPort } from '../support/test-upstream.ts';

describe('SSE bounds', () => {
  it('streams past sse.maxStreams are refused 503 with Retry-After; open streams leave maxInFlight to requests', async () => {
    await using gw = await startGateway({
      upstream: `http://127.0.0.1:${await closedPort()}`,
      maxInFlight: 2,
      sse: { maxStreams: 3 },
      replay: { concurrency: 0 }, // the operation waits, so its stream stays open
    });
    const accepted = await fetch(`${gw.publicUrl}/payments`, { method: 'POST', body: '{}' });
    assert.equal(accepted.status, 202);
    const id = operationIdOf(accepted);
    const events = `${gw.publicUrl}/_spillway/operations/${id}/events`;

    const controllers = [new AbortController(), new AbortController(), new AbortController()];
    // One after another: a stream counts against maxInFlight until it starts (its headers are sent after the
    // store read that checks the operation), so three opened at once against maxInFlight 2 may see a 503.
    const streams: Response[] = [];
    for (const c of controllers) streams.push(await fetch(events, { signal: c.signal }));
    assert.deepEqual(
      streams.map((s) => s.status),
      [200, 200, 200],
    );
    try {
      const refused = await fetch(events);
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get('retry-after'), '5');
      assert.equal(refused.headers.get('content-type'), 'application/problem+json');
      const problem = await jsonOf(refused);
      assert.equal(problem.code, 'overloaded');
      assert.match(problem.detail, /sse\.maxStreams/);

      // Three open streams, maxInFlight 2: requests are still served, two at a time.
      const monitors = await Promise.all(
        [1, 2].map(() => fetch(`${gw.publicUrl}/_spillway/operations/${id}`)),
      );
      assert.deepEqual(
        monitors.map((m) => m.status),
        [200, 200],
      );
      await Promise.all(monitors.map((m) => m.arrayBuffer()));

      // A stream that ends gives its place back.
      controllers[0]!.abort();
      const until = Date.now() + 5_000;
      let again: Response;
      for (;;) {
        again = await fetch(events);
        if (again.status === 200 || Date.now() > until) break;
        await again.arrayBuffer();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(again.status, 200);
      await again.body?.cancel();
    } finally {
      for (const controller of controllers) controller.abort();
    }
  });
});
