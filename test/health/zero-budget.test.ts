/**
 * A budget already spent when the call starts (`Prefer: wait=0` without
 * respond-async, or a budget used up while the body was read) is spent at
 * once, whatever the upstream's speed. It used to be a timer of 0 ms racing
 * the upstream's answer: on a fast loopback upstream the answer could win and
 * the client got the upstream's 201 instead of its 504 (seen in a clean CI
 * run of test/standards/openapi.test.ts). The injected clock here fires no
 * timer unless told, so the race is decided the way it must be, every time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConfig } from '../../src/config/config.ts';
import { FailoverEngine } from '../../src/engine/failover-engine.ts';
import { HttpUpstream } from '../../src/engine/upstream.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { jsonOf, startGateway } from '../support/harness.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { TestUpstream } from '../support/test-upstream.ts';

describe('a spent budget', () => {
  it('answers upstream-timeout even when the upstream answers at once', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'made' });
    const clock = new ManualClock();
    const store = new SqliteStore({ path: ':memory:', clock });
    const client = new HttpUpstream(upstream.url);
    const engine = new FailoverEngine({
      store,
      upstream: client,
      clock,
      instanceId: 'test',
      maxResultBytes: 1_000_000,
    });
    const route = buildConfig({ upstream: upstream.url }).routes.at(-1)!;
    try {
      for (const budgetMs of [0, 100]) {
        const answer = await engine.submit({
          route,
          request: { method: 'POST', path: '/pay', query: '', headers: [], body: Buffer.from('{}') },
          // Received `budgetMs` ago: with 0 the budget is spent by its own size, with 100 by the wait.
          receivedAt: clock.now() - budgetMs,
          budgetMs,
          mayFailover: false,
          tenant: null,
        });
        assert.equal(answer.kind, 'failed', `budget ${budgetMs}: ${JSON.stringify(answer)}`);
        assert.equal(answer.kind === 'failed' && answer.code, 'upstream-timeout');
      }
    } finally {
      await client.close();
      await store.close();
      await upstream.stop();
    }
  });
});

describe('Prefer: wait=0 without respond-async', () => {
  it('is answered 504 without sending the request or judging the upstream by it', async () => {
    const upstream = await new TestUpstream().start();
    try {
      await using gw = await startGateway({
        upstream: upstream.url,
        // Were these 504s judged as failed calls, the first two would trip the route.
        routeDefaults: { health: { minCalls: 2 } },
      });
      for (let i = 0; i < 10; i++) {
        const answer = await fetch(`${gw.publicUrl}/orders`, {
          method: 'POST',
          headers: { prefer: 'wait=0', 'x-zero': String(i) },
          body: `order ${i}`,
        });
        assert.equal(answer.status, 504);
        assert.equal((await jsonOf(answer)).code, 'upstream-timeout');
      }
      // Sent after them on the same route: it must still go to the upstream, not be captured.
      const plain = await fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: 'plain' });
      assert.equal(plain.status, 200, await plain.text());
      const [route] = (await jsonOf(await fetch(`http://127.0.0.1:${gw.adminPort}/api/health`))).routes;
      assert.equal(route.state, 'sync');
      // The plain request has been answered, so everything sent before it has reached the upstream too.
      assert.deepEqual(
        upstream.received.filter((r) => r.headers['x-zero'] !== undefined).map((r) => r.headers['x-zero']),
        [],
        'no wait=0 request reached the upstream',
      );
    } finally {
      await upstream.stop();
    }
  });
});
